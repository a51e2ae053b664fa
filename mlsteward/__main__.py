"""Run ``python -m mlsteward``."""

from mlsteward.cli import main

raise SystemExit(main())
