#!/usr/bin/env bash
# The main job: the cross-batch benchmark on the default real task, Tabula Muris FACS (Smart-seq2) -> droplet (10x),
# with all four default models. Leaves a complete results folder with plots in results/tm_facs_to_droplet
# (pass another folder as the first argument).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh
if [ -z "${SCAML_DATA_DIR:-}" ] && [ -d ../shared/data ]; then export SCAML_DATA_DIR="$(cd ../shared/data && pwd)"; fi
out=${1:-results/tm_facs_to_droplet}
.venv/bin/scaml_train --dataset tm_facs_to_droplet --models lr rf xgb mlp --outdir "$out" ${OVERWRITE:+--overwrite}
echo "figures: $(ls "$out"/*.png | tr '\n' ' ')"
