"""``mlsteward monitor``: load and verify the reference, then serve the sidecar on uvicorn.

``main(argv)`` is called by ``mlsteward/cli.py``. Exit codes: 0 after a clean shutdown,
2 for bad flags, configuration or an artifact that fails verification.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import sys
import time

import prometheus_client
import pydantic

from mlsteward.audit import locations, retention
from mlsteward.monitoring import app, decisions, monitors, references, settings
from mlsteward.store.errors import StoreError

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_TOP_PAD = -2
TRIM_THRESHOLD_BYTES = 64 << 20
TOP_PAD_BYTES = 16 << 20


def keep_freed_memory() -> bool:
    """Let the C allocator keep up to 64 MiB of freed heap for reuse instead of returning it to
    the kernel after each batch (glibc's ``mallopt``; elsewhere nothing changes).

    Every batch allocates and frees arrays of a few hundred KiB to a few MiB (a body's block, the
    staging flush's temporaries); with glibc's defaults the heap top is trimmed and grown again
    batch after batch, and every page touched again is a page fault. On the development machine
    that cost about a sixth of the sidecar's CPU per row (bench/serving/README.md). The memory
    kept is bounded by the threshold and stays well inside the container's limit.
    Returns whether the allocator took the settings.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and bool(mallopt(_M_TOP_PAD, TOP_PAD_BYTES))


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
        decision_log = _decision_log(config)
    except (pydantic.ValidationError, ValueError, OSError, references.ReferenceError, StoreError) as error:
        print(f"mlsteward monitor: {error}", file=sys.stderr)
        return 2
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    from mlsteward.monitoring import metrics

    registry.register(metrics.MonitorCollector(monitor))
    if decision_log is not None:
        registry.register(decisions.DecisionLogCollector(decision_log))
    application = app.App(monitor, config, registry, time.time, decision_log)
    keep_freed_memory()

    import uvicorn

    uvicorn.run(
        application,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        access_log=False,
        lifespan="on",
        # Reached directly (its server on 127.0.0.1, scrapers on the pod's address), never through
        # a proxy: no forwarded-header middleware, no Server or Date header (~20 µs less CPU per
        # request on the development machine).
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
    return 0


def _decision_log(config: settings.Settings) -> decisions.DecisionLog | None:
    if not config.decision_log_store:
        return None
    if not config.decision_log_deployment:
        raise ValueError("--decision-log-deployment is required with --decision-log-store")
    log_settings = decisions.LogSettings(
        namespace=locations.check_part("--decision-log-namespace", config.decision_log_namespace),
        deployment=locations.check_part("--decision-log-deployment", config.decision_log_deployment),
        chain=locations.check_part("--decision-log-chain", config.decision_log_chain or socket.gethostname()),
        log_inputs=config.decision_log_inputs,
        flush_interval_s=config.decision_log_flush_seconds,
        segment_max_records=config.decision_log_segment_records,
        max_queued_records=config.decision_log_queue_records,
        retention_s=retention.parse_retention(config.decision_log_retention),
        retention_check_s=config.decision_log_retention_check_seconds,
    )
    return decisions.DecisionLog(locations.open_location(config.decision_log_store), log_settings, time.time)
