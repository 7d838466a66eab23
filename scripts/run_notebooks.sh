#!/usr/bin/env bash
# Re-execute the notebooks the docs render, in place, and refresh their saved outputs: the docs pages show the
# outputs saved in the notebooks, so commit the notebooks after running this.
#   scripts/run_notebooks.sh                          every rendered notebook (nbs/, nbs/tutorials/; not nbs/analysis/)
#   scripts/run_notebooks.sh nbs/08_models.ipynb ...  only these
# Each notebook runs from its own folder as nbdev_test runs it, slow cells included (SCAML_RUN_FLAGS, default
# "slow"; add "gpu" on a machine with one), two at a time (JOBS=2). Run-to-run noise (progress bars, warnings,
# absolute paths, memory addresses, timings of unchanged results) is stripped by scripts/clean_outputs.py and the
# metadata by nbdev_clean, so running it twice changes nothing. A notebook with a failing cell is left unchanged
# and the script exits 1. Uses .venv (scripts/setup_venv.sh dev), or the environment in SCAML_VENV as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${SCAML_VENV:-}" ]; then
  export PATH="$SCAML_VENV/bin:$PATH" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  scripts/setup_venv.sh dev
  export PATH="$PWD/.venv/bin:$PATH"
fi
if [ -z "${SCAML_DATA_DIR:-}" ] && [ -d ../shared/data ]; then export SCAML_DATA_DIR="$(cd ../shared/data && pwd)"; fi
unset MPLBACKEND          # figures inline, as in Jupyter
export OMP_WAIT_POLICY=PASSIVE
t0=$(date +%s)
if [ $# -gt 0 ]; then nbs=("$@"); else mapfile -t nbs < <(python scripts/check_outputs.py --list); fi
rc=0
printf '%s\0' "${nbs[@]}" | xargs -0 -n 1 -P "${JOBS:-2}" python scripts/execute_notebook.py || rc=$?
echo "executed ${#nbs[@]} notebooks in $(( $(date +%s) - t0 ))s"
if [ $rc -ne 0 ]; then echo "some notebooks failed (see FAIL above); they are unchanged" >&2; exit 1; fi
python scripts/check_outputs.py "${nbs[@]}"
