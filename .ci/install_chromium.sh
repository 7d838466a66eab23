#!/usr/bin/env bash
# Install Debian's headless-capable chromium, for the docs browser check (.ci/docs_check.py).
# Idempotent: does nothing when chromium already runs.
set -euo pipefail

start=$(date +%s)
if command -v chromium >/dev/null 2>&1 && chromium --headless --no-sandbox --version >/dev/null 2>&1; then
    echo "install_chromium.sh: chromium already installed, nothing to do"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version
echo "install_chromium.sh: done in $(( $(date +%s) - start ))s"
