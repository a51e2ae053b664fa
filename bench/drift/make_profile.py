"""Write the benchmark's reference profile (100k rows) in the §2 format. Usage: make_profile.py OUT"""

from __future__ import annotations

import pathlib
import sys

import common

from mlsteward.monitoring import profiling
from mlsteward.store import artifacts

if __name__ == "__main__":
    document = profiling.profile(common.reference())
    pathlib.Path(sys.argv[1]).write_bytes(artifacts.canonical_json(document))
