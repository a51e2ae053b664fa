"""The one piece of the kubelet's HTTPS API the agent serves: container logs, for ``kubectl logs``.

The API server answers ``kubectl logs`` by calling ``GET /containerLogs/<ns>/<pod>/<container>``
on the node's address and ``daemonEndpoints.kubeletEndpoint`` port. Each node gets a listener
on its own loopback address and an ephemeral port, with a certificate from a CA in
``<state>/pki`` (the API server does not verify kubelet certificates unless told to with
``--kubelet-certificate-authority``, which the local control plane does not set). Supported
query parameters: ``follow``, ``tailLines``, ``limitBytes``; ``previous`` returns the whole log,
since the agent keeps one file per container across restarts. ``exec``, ``attach`` and
``port-forward`` are not served. No authentication: for development on loopback only.
"""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import socket
import ssl
from collections.abc import Callable

from aiohttp import web

from mlsteward.dev import certs

IsRunning = Callable[[str, str, str], bool]


def _tls(state: pathlib.Path) -> ssl.SSLContext:
    pki = state / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "kubelet.crt").is_file():
        now = datetime.datetime.now(datetime.UTC)
        ca, ca_key = certs.create_ca(pki, now)
        certs.issue(pki, "kubelet", ca, ca_key, now, common_name="mlsteward-agent", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki / "kubelet.crt"), str(pki / "kubelet.key"))
    return context


def _tail(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


class LogServer:
    """Serves ``/containerLogs`` from ``<state>/logs`` on each node's address."""

    def __init__(self, state: pathlib.Path, is_running: IsRunning) -> None:
        self.state = state
        self.is_running = is_running
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)

    async def start(self, hosts: list[str]) -> dict[str, int]:
        """Listen on every host; returns host -> port."""
        await self._runner.setup()
        context = _tls(self.state)
        ports = {}
        for host in hosts:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            ports[host] = int(sock.getsockname()[1])
            await web.SockSite(self._runner, sock, ssl_context=context).start()
        return ports

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        namespace = request.match_info["namespace"]
        pod = request.match_info["pod"]
        container = request.match_info["container"]
        path = self.state / "logs" / f"{namespace}_{pod}_{container}.log"
        if not path.is_file():
            raise web.HTTPNotFound(text=f"no log for container {container!r} of pod {namespace}/{pod}")
        query = request.query
        follow = query.get("follow", "false").lower() in {"true", "1"}
        limit = int(query["limitBytes"]) if query.get("limitBytes") else None
        data = path.read_bytes()
        offset = len(data)
        if query.get("tailLines"):
            data = _tail(data, int(query["tailLines"]))
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        sent = 0
        chunk = data if limit is None else data[:limit]
        await response.write(chunk)
        sent += len(chunk)
        while follow and (limit is None or sent < limit):
            await asyncio.sleep(0.2)
            with path.open("rb") as log:
                log.seek(offset)
                more = log.read()
            offset += len(more)
            if more:
                chunk = more if limit is None else more[: limit - sent]
                await response.write(chunk)
                sent += len(chunk)
            elif not self.is_running(namespace, pod, container):
                break
        await response.write_eof()
        return response
