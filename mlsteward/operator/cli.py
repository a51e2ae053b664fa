"""``mlsteward operator``: parse the settings, start the watches and the work queue, run until
SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import urllib.parse
from collections.abc import Sequence

from aiohttp import web

from mlsteward.operator import handlers, metrics, rbac
from mlsteward.operator import settings as settings_module

_log = logging.getLogger("mlsteward.operator")


async def serve_liveness(operator: handlers.Operator, endpoint: str) -> web.AppRunner | None:
    """Serve ``endpoint`` (e.g. ``http://0.0.0.0:8081/healthz``): 200 while every watch and the
    work queue run, 503 when one has stopped (the kubelet then restarts the pod)."""
    url = urllib.parse.urlsplit(endpoint)

    async def handle(_: web.Request) -> web.Response:
        if operator.alive():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="a watch or the work queue has stopped\n")

    app = web.Application()
    app.router.add_get(url.path or "/healthz", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, url.hostname or "0.0.0.0", url.port or 8081).start()
    except OSError as error:
        _log.error("liveness endpoint not started on %s: %s", endpoint, error)
        await runner.cleanup()
        return None
    return runner


async def run(settings: settings_module.Settings, stop: asyncio.Event | None = None) -> None:
    """Run the operator until ``stop`` is set (by default: until SIGTERM or SIGINT)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    operator = handlers.Operator(settings)
    operator.queue.observe = operator.context.metrics.observe_reconcile
    operator.context.metrics.queue_depth = operator.queue.depth
    servers = []
    if settings.metrics_port:
        servers.append(
            await metrics.serve(operator.context.metrics, settings.metrics_host, settings.metrics_port)
        )
    if settings.liveness_endpoint:
        servers.append(await serve_liveness(operator, settings.liveness_endpoint))
    operator.start()
    _log.info("mlsteward operator started with %s", settings)
    try:
        await stop.wait()
    finally:
        await operator.stop()
        for server in servers:
            if server is not None:
                await server.cleanup()


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
    asyncio.run(run(settings))
    return 0
