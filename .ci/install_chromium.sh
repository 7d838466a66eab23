#!/usr/bin/env bash
# Install Debian's headless-capable chromium, for the docs browser check (.ci/docs_check.py).
# Idempotent: does nothing when chromium already runs.
#   bash .ci/install_chromium.sh           install (as root, or through sudo)
#   bash .ci/install_chromium.sh --check   exit 0 when chromium runs headless, 1 otherwise; installs nothing
set -euo pipefail

PACKAGES="chromium fonts-dejavu-core"
ready() { command -v chromium >/dev/null 2>&1 && chromium --headless --no-sandbox --version >/dev/null 2>&1; }

if [ "${1:-}" = --check ]; then ready; exit; fi
start=$(date +%s)
if ready; then
    echo "install_chromium.sh: chromium already installed, nothing to do"
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
fi
chromium --version
echo "install_chromium.sh: done in $(( $(date +%s) - start ))s"
