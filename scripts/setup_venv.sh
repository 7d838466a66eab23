#!/usr/bin/env bash
# Create (or reuse) .venv and install scaml into it.
#   scripts/setup_venv.sh          the library and its command-line tools
#   scripts/setup_venv.sh dev      plus everything the test suite needs (nbdev, papermill, pytest, deepchem,
#                                  scvi-tools for the model 'scanvi', ...)
# torch (TORCH_SPEC, default torch==2.13.0) is installed first: on a machine without a GPU its CPU build (pip's own
# indexes when they have the +cpu build, else PyTorch's CPU index), with a GPU the default build; TORCH_INDEX_URL
# names the index to use instead.
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
  spec=${TORCH_SPEC:-torch==2.13.0}
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    echo "installing $spec from $TORCH_INDEX_URL" >&2
    "${pip[@]}" "$spec" --index-url "$TORCH_INDEX_URL"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "installing $spec (a GPU is present: the default build)" >&2
    "${pip[@]}" "$spec"
  else
    # no GPU: the CPU build, not the default Linux wheel with its several GB of CUDA libraries
    echo "installing $spec, the CPU build (no GPU here)" >&2
    case $spec in *==*+*|*" "*) cpu_spec="" ;; *==*) cpu_spec="$spec+cpu" ;; *) cpu_spec="" ;; esac
    if [ -z "$cpu_spec" ] || ! "${pip[@]}" "$cpu_spec" 2>/dev/null; then
      "${pip[@]}" "$spec" --index-url https://download.pytorch.org/whl/cpu
    fi
  fi
fi
if [ "$mode" = dev ]; then
  echo "installing scaml with the development extras" >&2
  "${pip[@]}" -e ".[dev]"
  # deepchem (optional ACTINN backend) declares Python < 3.12: a plain install where it can, else without its pins
  .venv/bin/python -c "import deepchem" 2>/dev/null || "${pip[@]}" "deepchem==2.8.0" \
    || "${pip[@]}" --no-deps --ignore-requires-python "deepchem==2.8.0" rdkit
else
  echo "installing scaml" >&2
  "${pip[@]}" -e ".[torch,report]"
fi
rm -f .venv/.scaml-"$mode"-*
touch "$stamp"
echo "environment ready in $(( $(date +%s) - t0 ))s: $(du -sh .venv | cut -f1) in .venv" >&2
