#!/usr/bin/env bash
# Create bench/drift/.venv-peers with Evidently 0.7.23 (never a runtime dependency of mlsteward).
# Evidently 0.7.23 does not import with pandas 3, hence the pin.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-peers"
python="${PYTHON:-python3}"
if [ ! -f "$venv/.installed" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "evidently==0.7.23" "pandas<3" "numpy<3" "scipy" "psutil"
  touch "$venv/.installed"
fi
echo "$venv"
