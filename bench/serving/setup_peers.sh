#!/usr/bin/env bash
# Create the peers' virtual environments under bench/serving/.venv-peers/ (gitignored; never a
# runtime dependency of mlsteward): MLServer 1.7 with its scikit-learn runtime, and KServe 0.21.
# Each peer gets its own venv because their pins (fastapi, pydantic, grpcio) need not agree.
# scikit-learn is pinned to the main venv's version so that the same joblib files load in both.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.venv-peers"
python="${PYTHON:-python3}"
sklearn="${SKLEARN_VERSION:?set SKLEARN_VERSION to the main venv scikit-learn version}"
mkdir -p "$root"
install() {
  local name="$1"; shift
  local venv="$root/$name"
  if [ ! -f "$venv/.installed" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "$@" "scikit-learn==$sklearn" "joblib"
    touch "$venv/.installed"
  fi
  echo "$venv"
}
install mlserver "mlserver==1.7.1" "mlserver-sklearn==1.7.1"
install kserve "kserve==0.21.0"
