"""``mlsteward serve``: flags and ``MLSTEWARD_SERVE_*`` variables in, an HTTP server until SIGTERM."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    from mlsteward.serving import settings

    try:
        config = settings.from_args(argv, os.environ)
    except settings.SettingsError as error:
        print(f"mlsteward serve: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.server.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from prometheus_client import CollectorRegistry

    from mlsteward.serving import (
        server,
    )  # heavy imports (ONNX Runtime, uvicorn) only once the flags are sound

    try:
        return server.run(config, CollectorRegistry(auto_describe=True))
    except OSError as error:
        print(
            f"mlsteward serve: cannot listen on {config.server.host}:{config.server.port}: {error}",
            file=sys.stderr,
        )
        return 1
