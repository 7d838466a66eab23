#!/usr/bin/env bash
# The full test suite: notebooks in sync with the package, lint, every notebook (nbdev_test), pytest, and the
# docs pages rendered and checked in a headless browser (needs chromium: .ci/install_chromium.sh).
#   scripts/test.sh            everything but the cells flagged slow
#   SCAML_TEST_FLAGS=slow scripts/test.sh    also the slow cells
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh dev
if [ -z "${SCAML_DATA_DIR:-}" ] && [ -d ../shared/data ]; then export SCAML_DATA_DIR="$(cd ../shared/data && pwd)"; fi
export MPLBACKEND=Agg PATH="$PWD/.venv/bin:$PATH" OMP_WAIT_POLICY=PASSIVE
t0=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - t0 ))s)"; }

step "notebooks are the source: nbdev_export and nbdev_clean change nothing"
before=$(git status --porcelain -- scaml nbs README.md)
nbdev_export
nbdev_clean
python scripts/make_readme.py
after=$(git status --porcelain -- scaml nbs README.md)
if [ "$before" != "$after" ]; then
  echo "scaml/, nbs/ or README.md changed: export, clean and regenerate the README, then commit" >&2
  git status --porcelain -- scaml nbs README.md >&2
  exit 1
fi

step "ruff"
ruff check scaml benchmarks tests scripts

step "nbdev_test"
nbdev_test --n_workers 2 --timing ${SCAML_TEST_FLAGS:+--flags "$SCAML_TEST_FLAGS"}

step "pytest"
python -m pytest tests -q -p no:cacheprovider --durations=15 "$@"

step "docs: nbdev's processing, HTML, and every page checked in headless chromium"
python .ci/docs_check.py
step "done"
