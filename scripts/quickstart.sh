#!/usr/bin/env bash
# The main job: the cross-batch benchmark on the default real task, Tabula Muris FACS (Smart-seq2) -> droplet (10x),
# with all four default models. Leaves a complete results folder with plots in results/tm_facs_to_droplet
# (pass another folder as the first argument; OVERWRITE=1 replaces an earlier run's folder). SCAML_VENV names an
# existing environment to use instead of .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${SCAML_VENV:-}" ]; then   # an existing environment, used as it is, with this checkout first on the path
  bin="$SCAML_VENV/bin"; export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  scripts/setup_venv.sh; bin=.venv/bin
fi
if [ -z "${SCAML_DATA_DIR:-}" ] && [ -d ../shared/data ]; then export SCAML_DATA_DIR="$(cd ../shared/data && pwd)"; fi
out=${1:-results/tm_facs_to_droplet}
if [ -e "$out" ] && [ -z "${OVERWRITE:-}" ]; then
  echo "$out already holds a run: OVERWRITE=1 $0 replaces it, or $0 OTHER_FOLDER writes elsewhere" >&2
  exit 1
fi
"$bin/scaml_train" --dataset tm_facs_to_droplet --models lr rf xgb mlp --outdir "$out" ${OVERWRITE:+--overwrite}
echo "figures: $(ls "$out"/*.png | tr '\n' ' ')"
