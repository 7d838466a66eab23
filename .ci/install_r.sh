#!/usr/bin/env bash
# Install R, Seurat and hdf5r from Debian's packages, for the Seurat export tests.
# Idempotent: does nothing when R can already load Seurat and hdf5r.
set -euo pipefail

start=$(date +%s)
check='suppressPackageStartupMessages({library(Seurat); library(hdf5r)})'

if command -v Rscript >/dev/null 2>&1 && Rscript -e "$check" >/dev/null 2>&1; then
    echo "install_r.sh: R with Seurat and hdf5r already installed, nothing to do"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends \
        r-base-core r-cran-seurat r-cran-seuratobject r-cran-hdf5r >/dev/null
    Rscript -e "$check"
fi

Rscript -e 'cat("R", as.character(getRversion()), "| Seurat", as.character(packageVersion("Seurat")), "| SeuratObject", as.character(packageVersion("SeuratObject")), "| hdf5r", as.character(packageVersion("hdf5r")), "\n")'
echo "install_r.sh: done in $(( $(date +%s) - start ))s"
