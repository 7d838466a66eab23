#!/usr/bin/env bash
# Install R with SeuratObject and hdf5r from Debian's packages (r-cran-*; CRAN itself is not needed), for the
# Seurat export (scaml_export_seurat) and its tests. Seurat itself is not needed: the export reads the object with
# SeuratObject. Idempotent: does nothing when R can already load both.
#   bash .ci/install_r.sh           install (as root, or through sudo)
#   bash .ci/install_r.sh --check   exit 0 when R with SeuratObject and hdf5r is ready, 1 otherwise; installs nothing
set -euo pipefail

PACKAGES="r-base-core r-cran-seuratobject r-cran-hdf5r"
check='suppressPackageStartupMessages({library(SeuratObject); library(hdf5r)})'
ready() { command -v Rscript >/dev/null 2>&1 && Rscript -e "$check" >/dev/null 2>&1; }

if [ "${1:-}" = --check ]; then ready; exit; fi
start=$(date +%s)
if ready; then
    echo "install_r.sh: R with SeuratObject and hdf5r already installed, nothing to do"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    # the package lists are refreshed only when the packages are not in them (a fresh image has none)
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null 2>&1 || {
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
    }
    Rscript -e "$check"
fi

Rscript -e 'cat("R", as.character(getRversion()), "| SeuratObject", as.character(packageVersion("SeuratObject")), "| hdf5r", as.character(packageVersion("hdf5r")), "\n")'
echo "install_r.sh: done in $(( $(date +%s) - start ))s"
