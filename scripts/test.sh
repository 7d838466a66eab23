#!/usr/bin/env bash
# The full test suite: notebooks in sync with the package, lint, every notebook (nbdev_test), pytest, and the docs
# pages rendered and checked in a headless browser.
#   scripts/test.sh                          everything but the cells and tests flagged slow
#   SCAML_TEST_FLAGS=slow scripts/test.sh    also the slow notebook cells and the slow pytest tests (CI does)
#   scripts/test.sh -k novelty               extra arguments go to pytest
# System packages: the Seurat export tests need R with SeuratObject and hdf5r, the docs check chromium. Where they
# are missing and this runs as root (or with sudo) on a machine with apt-get, they are installed once, in the
# background while the first steps run (.ci/install_r.sh, .ci/install_chromium.sh). Elsewhere, or with
# SCAML_NO_INSTALL=1, those tests are skipped and the summary says why and how to install them; with
# SCAML_REQUIRE_SYSTEM=1 (as in .ci/run) a missing package fails the run instead.
# Every step runs even when one before it failed; the summary lists the failed steps, the time of each step and
# what was skipped. Uses .venv (created by scripts/setup_venv.sh dev), or the environment in SCAML_VENV as it is.
# Data: SCAML_DATA_DIR, else ../shared/data beside the clone, else every registered dataset fetched into the cache
# (SCAML_CACHE, default ~/.cache/scaml; downloaded from SCAML_DATA_URL when set, as a mirror of the public sources).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
step_t=$t0
times=()
step() {
  local now; now=$(date +%s)
  if [ -n "${step_name:-}" ]; then times+=("$(printf '%4ss  %s' $(( now - step_t )) "$step_name")"); fi
  step_name=$1; step_t=$now
  [ -n "$1" ] && { echo; echo "== $1 ($(( now - t0 ))s)"; }
  return 0
}
skipped=()
require=${SCAML_REQUIRE_SYSTEM:-0}

# -- system packages: start installing what is missing, in the background ------------------------------------------
step "system packages: R with SeuratObject and hdf5r, chromium"
need=()
bash .ci/install_r.sh --check || need+=(r)
bash .ci/install_chromium.sh --check || need+=(chromium)
can_install=0
if [ "${SCAML_NO_INSTALL:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1 \
   && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then can_install=1; fi
install_pid="" install_log=""
if [ ${#need[@]} -gt 0 ] && [ $can_install = 1 ]; then
  install_log=$(mktemp -t scaml-install.XXXXXX)
  echo "installing ${need[*]} in the background (log: $install_log)"
  ( for n in "${need[@]}"; do bash ".ci/install_$n.sh" || exit 1; done ) >"$install_log" 2>&1 &
  install_pid=$!
elif [ ${#need[@]} -gt 0 ]; then
  why="not root, no passwordless sudo or no apt-get"
  [ "${SCAML_NO_INSTALL:-0}" = 1 ] && why="SCAML_NO_INSTALL=1"
  echo "missing: ${need[*]}; not installing them ($why)"
  if [ "$require" = 1 ]; then echo "SCAML_REQUIRE_SYSTEM=1: R and chromium are required; install them first" >&2; exit 1; fi
else
  echo "all there"
fi
# wait_install: wait for the background installs; fails only when they were started and failed
wait_install() {
  [ -n "$install_pid" ] || return 0
  local rc=0
  wait "$install_pid" || rc=$?
  install_pid=""
  sed 's/^/  /' "$install_log"
  [ $rc = 0 ] || echo "installing the system packages failed (exit $rc); log above" >&2
  return 0
}
install_hint_r="sudo bash .ci/install_r.sh   (Debian/Ubuntu: apt-get install r-base-core r-cran-seuratobject r-cran-hdf5r)"
install_hint_chromium="sudo bash .ci/install_chromium.sh   (Debian/Ubuntu: apt-get install chromium)"

# -- Python environment ------------------------------------------------------------------------------------------
step "Python environment"
if [ -n "${SCAML_VENV:-}" ]; then
  echo "using $SCAML_VENV as it is, with this checkout first on the path"
  export PATH="$SCAML_VENV/bin:$PATH" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  scripts/setup_venv.sh dev
  export PATH="$PWD/.venv/bin:$PATH"
fi
if [ -z "${SCAML_DATA_DIR:-}" ] && [ -d ../shared/data ]; then export SCAML_DATA_DIR="$(cd ../shared/data && pwd)"; fi
export MPLBACKEND=Agg OMP_WAIT_POLICY=PASSIVE
if [ -z "${SCAML_DATA_DIR:-}" ]; then
  # a clone alone: every registered dataset into the cache (downloaded, from SCAML_DATA_URL when set), used from there
  step "data: the registered datasets into the cache"
  SCAML_DATA_DIR=$(python -c 'from scaml.datasets import DATASETS, cache_dir, fetch_dataset
for n in DATASETS: fetch_dataset(n)
print(cache_dir().resolve())' | tail -n 1) || { echo "the registered datasets could not be fetched (see above)" >&2; exit 1; }
  export SCAML_DATA_DIR
  echo "datasets in $SCAML_DATA_DIR"
fi

# -- the checks: each runs even when one before it failed; the summary lists failures, times and skips -------------
failed=()
run_step() {   # run_step NAME COMMAND...: a failing command marks the step failed and the run goes on
  step "$1"; local name=$1; shift
  "$@" || { failed+=("$name"); echo "FAILED: $name" >&2; }
  return 0
}
check_sync() {
  local before after
  before=$(git status --porcelain -- scaml nbs README.md)
  nbdev_export && nbdev_clean && python scripts/make_readme.py || return 1
  after=$(git status --porcelain -- scaml nbs README.md)
  if [ "$before" != "$after" ]; then
    echo "scaml/, nbs/ or README.md changed: export, clean and regenerate the README, then commit" >&2
    git status --porcelain -- scaml nbs README.md >&2
    return 1
  fi
}
run_pytest() {
  wait_install
  if ! bash .ci/install_r.sh --check; then
    if [ "$require" = 1 ]; then echo "R with SeuratObject and hdf5r is required (SCAML_REQUIRE_SYSTEM=1) but missing" >&2; return 1; fi
    export SCAML_SKIP_R="install with: $install_hint_r"
    skipped+=("Seurat export tests (tests/test_seurat.py): R with SeuratObject and hdf5r is missing; install with: $install_hint_r")
  fi
  local marks=()
  case " ${SCAML_TEST_FLAGS:-} " in *" slow "*) marks=(-m "") ;; esac      # the slow tests too
  python -m pytest tests -q -rs -p no:cacheprovider --durations=15 "${marks[@]}" "$@"
}
run_docs() {
  wait_install
  if bash .ci/install_chromium.sh --check; then
    python .ci/docs_check.py
  else
    if [ "$require" = 1 ]; then echo "chromium is required (SCAML_REQUIRE_SYSTEM=1) but missing" >&2; return 1; fi
    echo "chromium is missing: the pages are built and their notebooks checked, without the browser"
    skipped+=("docs browser check (.ci/docs_check.py): chromium is missing; install with: $install_hint_chromium")
    python .ci/docs_check.py --no-browser
  fi
}

run_step "notebooks are the source: nbdev_export and nbdev_clean change nothing" check_sync
run_step "ruff" ruff check scaml benchmarks tests scripts .ci
run_step "nbdev_test" nbdev_test --n_workers 2 --timing ${SCAML_TEST_FLAGS:+--flags "$SCAML_TEST_FLAGS"}
run_step "pytest" run_pytest "$@"
run_step "docs: nbdev's processing, HTML, outputs and key results, every page checked in headless chromium" run_docs
step ""

echo
if [ ${#failed[@]} -gt 0 ]; then echo "== summary: FAILED after $(( $(date +%s) - t0 ))s"
else echo "== summary: passed in $(( $(date +%s) - t0 ))s"; fi
printf '%s\n' "${times[@]}"
if [ ${#skipped[@]} -gt 0 ]; then
  echo "SKIPPED (not run on this machine):"
  printf '  - %s\n' "${skipped[@]}"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED:"
  printf '  - %s\n' "${failed[@]}"
  exit 1
fi
