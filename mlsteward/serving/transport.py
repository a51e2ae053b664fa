"""HTTP/1.1 on httptools: the server's own transport, lighter than an ASGI server per request.

Why not uvicorn: for small inference requests the ASGI machinery (scope and message dicts, the
receive/send awaitables, middleware, two socket writes per response) costs as much CPU as
parsing and scoring the request. Here each connection is an ``asyncio.Protocol`` fed by
httptools' C parser; a complete request becomes one task running ``App.handle``; the response
is written with one ``write``. Requests pipelined on one connection are answered in order;
reading pauses while a connection has too many requests in flight.

A declared body over the limit is answered 413 as soon as the headers are in, and the connection
closed (the rest of the body is never read); an undeclared (chunked) one is not buffered past the
limit and is answered 413 once complete.
Shutdown stops accepting, lets in-flight requests finish (up to a timeout), answers them with
``connection: close`` and closes idle keep-alive connections. A client that stops reading its
responses stops being read (write-buffer back-pressure), and connections idle for longer than
the keep-alive timeout are closed by a sweep every few seconds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import time
import urllib.parse
from collections.abc import Coroutine
from typing import Any

import httptools

from mlsteward.serving import app as app_module
from mlsteward.serving import binary, errors, protocol

_log = logging.getLogger("mlsteward.serving.transport")
_REASONS = {
    100: b"Continue",
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Payload Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}
_MAX_PIPELINED = 16
_SWEEP_S = 5.0


class HttpServer:
    """Serve an :class:`~mlsteward.serving.app.App` on a bound socket.

    Usage::

        http = HttpServer(application, max_body_bytes=4 << 20)
        await http.start(sock)
        ...
        await http.shutdown(timeout=20)
    """

    def __init__(
        self, application: app_module.App, *, max_body_bytes: int, keep_alive_s: float = 75.0
    ) -> None:
        self.app = application
        self.max_body = max_body_bytes
        self.keep_alive_s = keep_alive_s
        self.connections: set[_Connection] = set()
        self.closing = False
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sock.listen(4096)
        self._server = await loop.create_server(lambda: _Connection(self), sock=sock, backlog=4096)
        self._sweeper = loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_S)
            idle_since = time.monotonic() - self.keep_alive_s
            for connection in list(self.connections):
                if connection.last_active < idle_since:
                    connection.close_if_idle()

    async def shutdown(self, timeout: float) -> None:
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close_if_idle()
        deadline = time.monotonic() + timeout
        while any(c.busy for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[tuple[asyncio.Task[app_module.Result], bool]] = collections.deque()
        self.paused = False
        self._url = b""
        self._body: list[bytes] = []
        self._json_length: bytes | None = None
        self._size = 0
        self._too_large = False
        self._refused = False
        self._write_paused = False
        self.last_active = time.monotonic()

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as error:
            self._refuse(400, f"malformed HTTP request: {error}")

    def pause_writing(self) -> None:
        # The client is not reading what we write: stop reading what it sends until it catches up.
        self._write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is not None and not self.paused:
            self.transport.resume_reading()

    def close_if_idle(self) -> None:
        if not self.pending and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []
        self._json_length = None
        self._size = 0
        self._too_large = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-length":
            if value.strip().isdigit() and int(value) > self.server.max_body:
                self._too_large = True
        elif lowered == binary.HEADER:
            self._json_length = value
        elif lowered == b"expect" and value.strip().lower() == b"100-continue" and self.transport is not None:
            # Clients that wait for it (curl with large bodies) would otherwise stall a second.
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_headers_complete(self) -> None:
        if self._too_large:
            # Answer now instead of reading megabytes we will not use; the connection then closes.
            self._refused = True
            error = errors.PayloadTooLargeError(f"request body exceeds {self.server.max_body} bytes")
            self._queue(_answer(error), keep_alive=False)
            if self.transport is not None:
                self.transport.pause_reading()
                self.paused = True

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return
        self._size += len(body)
        if self._size > self.server.max_body:
            self._too_large = True
            self._body = []
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        method = self.parser.get_method().decode("latin-1")
        keep_alive = self.parser.should_keep_alive() and not self.server.closing
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        try:
            path = urllib.parse.unquote(httptools.parse_url(self._url).path.decode("latin-1"))
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            path = ""
        if self._too_large:
            coroutine = _answer(
                errors.PayloadTooLargeError(f"request body exceeds {self.server.max_body} bytes")
            )
        else:
            coroutine = self.server.app.handle(method, path, body, self._json_length)
        self._queue(coroutine, keep_alive)

    def _queue(self, coroutine: Coroutine[Any, Any, app_module.Result], keep_alive: bool) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.pending.append((task, keep_alive))
        task.add_done_callback(self._flush)
        if len(self.pending) >= _MAX_PIPELINED and self.transport is not None and not self.paused:
            self.transport.pause_reading()
            self.paused = True

    # --- responses ---------------------------------------------------------------------------

    def _flush(self, _: Any) -> None:
        while self.pending and self.pending[0][0].done():
            task, keep_alive = self.pending.popleft()
            result: app_module.Result = (
                (503, protocol.encode_error("the server is shutting down"), app_module.JSON_HEADERS)
                if task.cancelled()
                else task.result()
            )
            status, payload, headers = result
            keep_alive = keep_alive and not self.server.closing
            if self.transport is None or self.transport.is_closing():
                continue
            self.transport.write(_head(status, len(payload), headers, keep_alive) + payload)
            if not keep_alive:
                self.transport.close()
                return
        if self.paused and not self._refused and len(self.pending) < _MAX_PIPELINED // 2 and self.transport:
            self.paused = False
            if not self._write_paused:
                self.transport.resume_reading()
        if self.server.closing and not self.pending and self.transport is not None:
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            payload = protocol.encode_error(message)
            self.transport.write(_head(status, len(payload), app_module.JSON_HEADERS, False) + payload)
            self.transport.close()


async def _answer(error: errors.ServingError) -> app_module.Result:
    return error.status, protocol.encode_error(error.message), app_module.JSON_HEADERS


def _head(status: int, length: int, headers: app_module.Headers, keep_alive: bool) -> bytes:
    lines = [
        b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown")),
        b"content-length: %d\r\n" % length,
    ]
    lines += [name + b": " + value + b"\r\n" for name, value in headers]
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)
