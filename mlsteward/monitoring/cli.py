"""``mlsteward monitor``: load and verify the reference, then serve the sidecar on uvicorn.

``main(argv)`` is called by ``mlsteward/cli.py``. Exit codes: 0 after a clean shutdown,
2 for bad flags, configuration or an artifact that fails verification.
"""

from __future__ import annotations

import os
import sys
import time

import prometheus_client
import pydantic

from mlsteward.monitoring import app, monitors, references, settings


def main(argv: list[str]) -> int:
    try:
        config = settings.from_args(argv, os.environ)
        monitor_config = settings.load_config(config.config)
        rules = settings.rules(monitor_config)
        reference = references.load(config.profile_artifact, config.digest)
        monitor = monitors.Monitor(
            reference,
            rules,
            settings.window_spec(monitor_config, config),
            settings.options(monitor_config, config),
            now=time.time(),
            digest=config.digest,
        )
    except (pydantic.ValidationError, ValueError, OSError, references.ReferenceError) as error:
        print(f"mlsteward monitor: {error}", file=sys.stderr)
        return 2
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    from mlsteward.monitoring import metrics

    registry.register(metrics.MonitorCollector(monitor))
    application = app.App(monitor, config, registry, time.time)

    import uvicorn

    uvicorn.run(
        application,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        access_log=False,
        lifespan="on",
    )
    return 0
