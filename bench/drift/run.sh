#!/usr/bin/env bash
# The drift benchmark (outside `make test`): creates the Evidently venv, then prints the table.
#   bench/drift/run.sh [--rows 100000,1000000] [--repeats 3] [--evidently-repeats 1]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
"$here/setup_peers.sh" >/dev/null
exec "$repo/.venv/bin/python" "$here/bench.py" "$@"
