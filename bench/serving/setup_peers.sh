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
  local wanted="$* scikit-learn==$sklearn joblib"
  if [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "$wanted" ]; then
    [ -x "$venv/bin/pip" ] || "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "$@" "scikit-learn==$sklearn" "joblib"
    echo "$wanted" > "$venv/.installed"
  fi
  echo "$venv"
}
# uvloop 0.22+ raises in asyncio.get_event_loop() without a running loop, which MLServer 1.7's
# parallel inference workers call at start: pin the uvloop of MLServer 1.7's time.
install mlserver "mlserver==1.7.1" "mlserver-sklearn==1.7.1" "uvloop==0.21.0"
install kserve "kserve==0.21.0"
