"""``mlsteward operator``: parse the settings, configure kopf, run until stopped."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

import kopf

from mlsteward.operator import handlers, metrics, rbac
from mlsteward.operator import settings as settings_module


class EmptyDiffBaseStorage(kopf.StatusDiffBaseStorage):
    """kopf's diff base, under ``status.kopf``, kept empty.

    kopf builds a diff base (a deep copy of the body's essence) on every watch event, for
    change handlers. This operator registers none (see handlers.py), so the copy is pure cost:
    about 6 ms an event in a profile, the largest single cost at 100 Models.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()


def kopf_settings(settings: settings_module.Settings) -> kopf.OperatorSettings:
    """kopf's own settings: timeouts on every watch, nothing of kopf's in annotations."""
    result = kopf.OperatorSettings()
    result.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    result.persistence.diffbase_storage = EmptyDiffBaseStorage(field="status.kopf.diffbase")
    result.persistence.finalizer = "mlsteward.io/kopf"
    result.watching.server_timeout = settings.watch_timeout_seconds
    result.watching.client_timeout = settings.watch_timeout_seconds + 15
    result.watching.connect_timeout = 10
    result.watching.inactivity_timeout = settings.watch_timeout_seconds + 30
    result.watching.reconnect_backoff = 1.0
    result.networking.request_timeout = 30
    # kopf keeps a worker task (with its queue and the events' bodies) per object until it has
    # been idle this long: with thousands of objects arriving at once, 5 s (the default) keeps
    # thousands alive and their memory stays with the process after the burst.
    result.queueing.idle_timeout = 0.5
    result.scanning.disabled = True
    result.posting.enabled = False  # the reconcilers emit their own Events
    return result


async def run(settings: settings_module.Settings, stop: asyncio.Event | None = None) -> None:
    registry = kopf.OperatorRegistry()
    operator = handlers.Operator(settings)
    handlers.register(registry, operator)
    # A server of its own: kopf's liveness endpoint serves only /healthz.
    operator.queue.observe = operator.context.metrics.observe_reconcile
    operator.context.metrics.queue_depth = operator.queue.depth
    server = None
    if settings.metrics_port:
        server = await metrics.serve(operator.context.metrics, settings.metrics_host, settings.metrics_port)
    try:
        await _run_kopf(settings, registry, stop)
    finally:
        if server is not None:
            await server.cleanup()


async def _run_kopf(
    settings: settings_module.Settings, registry: kopf.OperatorRegistry, stop: asyncio.Event | None
) -> None:
    await kopf.operator(
        registry=registry,
        settings=kopf_settings(settings),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint or None,
        stop_flag=stop,
    )


def main(argv: Sequence[str]) -> int:
    if list(argv[:1]) == ["rbac"]:
        print(rbac.render(), end="")
        return 0
    try:
        settings = settings_module.parse(argv)
    except ValueError as error:
        print(f"mlsteward operator: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # kopf logs every event handler call at INFO: one line per watch event is noise here.
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, logging.getLogger().level))
    asyncio.run(run(settings))
    return 0
