"""Wire the pieces together and run them under uvicorn: socket, lifespan tasks, SIGTERM drain.

Lifecycle: the socket listens at once (liveness answers while models load); a background task
loads the routing file's versions, warms them up and only then reports ready; the same task
polls the routing file. On SIGTERM (or SIGINT) the server reports not ready immediately, keeps
serving for ``--drain-delay`` seconds (so Kubernetes can take the pod out of its endpoints),
then stops accepting connections, lets in-flight requests finish (``--drain-timeout``), flushes
the monitor feed and exits 0. A second SIGINT forces the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
import time
from collections.abc import Generator
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from mlsteward.serving import app, feed, metrics, openapi, service, settings, transport

_log = logging.getLogger("mlsteward.serving.server")


def build(config: settings.ServeSettings, registry: CollectorRegistry) -> tuple[app.App, service.Service]:
    """The application and its service, with the metrics registered on ``registry``."""
    serving_metrics = metrics.ServingMetrics(registry)
    monitor = None
    if config.monitor.url:
        monitor = feed.MonitorFeed(
            config.monitor.url,
            queue_rows=config.monitor.queue_rows,
            batch_rows=config.monitor.batch_rows,
            flush_interval_s=config.monitor.flush_interval_s,
            timeout_s=config.monitor.timeout_s,
            metrics=serving_metrics,
        )
    svc = service.Service(config, serving_metrics, monitor)
    application = app.App(svc, openapi.document(), config.server.max_body_bytes)
    application.lifespan = _Lifespan(svc)
    return application, svc


class _Lifespan:
    """ASGI lifespan: start the loader/watcher and the monitor feed; stop them on shutdown."""

    def __init__(self, svc: service.Service) -> None:
        self._service = svc
        self._tasks: list[asyncio.Task[None]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._tasks.append(asyncio.create_task(self._load_then_watch()))
                if self._service.monitor is not None:
                    self._tasks.append(asyncio.create_task(self._service.monitor.run()))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                for task in self._tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _load_then_watch(self) -> None:
        await self._service.reload_once()
        # Everything alive now (modules, sessions, the first snapshot) lives as long as the process:
        # move it out of the collector's generations so full collections stay short (p99).
        gc.freeze()
        await self._service.watch_routing()


class _Server(uvicorn.Server):
    """uvicorn's server with our drain: not ready first, stop accepting after the drain delay."""

    def __init__(self, config: uvicorn.Config, svc: service.Service, drain_delay_s: float) -> None:
        super().__init__(config)
        self._service = svc
        self._drain_delay_s = drain_delay_s
        self._exit_at: float | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Unlike uvicorn's, ours does not re-raise the signal afterwards: a drained server exits 0.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._exit_at is not None:
            if sig == signal.SIGINT:
                self.force_exit = True
            return
        _log.info(
            "received %s: not ready now, draining in %.1f s", signal.Signals(sig).name, self._drain_delay_s
        )
        self._service.start_draining()
        self._exit_at = time.monotonic() + self._drain_delay_s

    async def on_tick(self, counter: int) -> bool:
        if self._exit_at is not None and time.monotonic() >= self._exit_at:
            return True
        result: bool = await super().on_tick(counter)
        return result


def bind(config: settings.ServerSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if config.reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # uvicorn writes a response's head and body separately: without TCP_NODELAY (inherited by the
    # accepted sockets) Nagle holds the body until the client's delayed ACK, ~40 ms later.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((config.host, config.port))
    sock.set_inheritable(True)
    return sock


def run(config: settings.ServeSettings, registry: CollectorRegistry) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    application, svc = build(config, registry)
    sock = bind(config.server)
    host, port = sock.getsockname()[:2]
    _log.info(
        "listening on http://%s:%d (%s; routing file %s, store %s)",
        host,
        port,
        config.server.http,
        config.server.routing,
        config.server.store,
    )
    if config.server.http == "uvicorn":
        return _run_uvicorn(application, svc, config, sock)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(application, svc, config, sock))


async def _serve(
    application: app.App, svc: service.Service, config: settings.ServeSettings, sock: socket.socket
) -> int:
    """The httptools transport's lifecycle: start, load, wait for a signal, drain, stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    state = {"signalled": False}

    def on_signal(sig: signal.Signals) -> None:
        if state["signalled"]:
            if sig == signal.SIGINT:
                stop.set()
            return
        state["signalled"] = True
        _log.info("received %s: not ready now, draining in %.1f s", sig.name, config.server.drain_delay_s)
        svc.start_draining()
        loop.call_later(config.server.drain_delay_s, stop.set)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    tasks = [loop.create_task(_Lifespan(svc)._load_then_watch())]
    if svc.monitor is not None:
        tasks.append(loop.create_task(svc.monitor.run()))
    http = transport.HttpServer(
        application, max_body_bytes=config.server.max_body_bytes, keep_alive_s=config.server.keep_alive_s
    )
    await http.start(sock)
    await stop.wait()
    _log.info("draining: no new connections; finishing in-flight requests")
    await http.shutdown(config.server.drain_timeout_s)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    _log.info("stopped")
    return 0


def _run_uvicorn(
    application: app.App, svc: service.Service, config: settings.ServeSettings, sock: socket.socket
) -> int:
    uvicorn_config = uvicorn.Config(
        application,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        date_header=False,
        backlog=4096,
        timeout_keep_alive=max(1, round(config.server.keep_alive_s)),
        timeout_graceful_shutdown=max(1, round(config.server.drain_timeout_s)),
    )
    _Server(uvicorn_config, svc, config.server.drain_delay_s).run(sockets=[sock])
    return 0
