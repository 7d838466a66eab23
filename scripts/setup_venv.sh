#!/usr/bin/env bash
# Create (or reuse) .venv and install scaml into it.
#   scripts/setup_venv.sh          the library and its command-line tools
#   scripts/setup_venv.sh dev      plus everything the test suite needs (nbdev, papermill, pytest, deepchem,
#                                  scvi-tools for the model 'scanvi', ...)
# On a machine without a GPU, torch is installed as the CPU build (TORCH_SPEC, default torch==2.13.0;
# set TORCH_INDEX_URL to a CPU wheel index where the default index only has CUDA builds).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-user}
PY=${PYTHON:-python3}
t0=$(date +%s)
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)
stamp=".venv/.scaml-$mode-$(cat settings.ini setup.py scripts/setup_venv.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "installing torch (${TORCH_SPEC:-torch==2.13.0})" >&2
  "${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
if [ "$mode" = dev ]; then
  echo "installing scaml with the development extras" >&2
  "${pip[@]}" -e ".[dev]"
  # deepchem (optional ACTINN backend) declares Python < 3.12: a plain install where it can, else without its pins
  .venv/bin/python -c "import deepchem" 2>/dev/null || "${pip[@]}" "deepchem==2.8.0" \
    || "${pip[@]}" --no-deps --ignore-requires-python "deepchem==2.8.0" rdkit
else
  echo "installing scaml" >&2
  "${pip[@]}" -e ".[torch]"
fi
rm -f .venv/.scaml-"$mode"-*
touch "$stamp"
echo "environment ready in $(( $(date +%s) - t0 ))s: $(du -sh .venv | cut -f1) in .venv" >&2
