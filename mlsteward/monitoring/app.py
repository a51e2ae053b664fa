"""The sidecar's HTTP surface: a lean ASGI app (no framework) served by uvicorn.

Routes (docs/contracts.md §4), all in ``App._route``:

- ``POST /v1/rows``: a batch from the server; ``202 {"accepted": n}``, or a 4xx with
  ``{"error": ..., "reason": ...}`` (counted, no window changed); ``503`` when more than
  ``max_concurrent_ingest`` bodies are being read at once (counted as dropped).
- ``POST /v1/labels``: delayed ground truth; ``202 {"accepted": n, "joined": j}``.
- With a decision log (``--decision-log-store``), every accepted batch (and every well-formed
  one kept out of the windows as a NaN storm) is also handed to ``decisions.DecisionLog``,
  which writes it off the event loop.
- ``GET /metrics`` (Prometheus text), ``GET /summary`` (JSON), ``GET /report`` (HTML),
  ``GET /healthz``.

Ingest is synchronous once the body is in: validation and binning of a few hundred rows
take well under a millisecond, so nothing queues behind it. A background task closes
time-based windows once per ``tick_seconds`` when no traffic arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
import orjson
import prometheus_client
from prometheus_client import exposition

from mlsteward.monitoring import batches, decisions, monitors, report, settings, views

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Clock = Callable[[], float]

_JSON = b"application/json"


class HttpError(Exception):
    """A response other than success: status, message and (for batches) the rejection reason."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class App:
    """ASGI application over one ``Monitor``; the registry is created by the caller."""

    def __init__(
        self,
        monitor: monitors.Monitor,
        config: settings.Settings,
        registry: prometheus_client.CollectorRegistry,
        clock: Clock,
        decision_log: decisions.DecisionLog | None = None,
    ) -> None:
        self.monitor = monitor
        self.decision_log = decision_log
        self.settings = config
        self.registry = registry
        self.clock = clock
        self._reading = 0
        self._ticker: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, content_type, body = await self._route(scope, receive)
        except HttpError as error:
            payload: dict[str, Any] = {"error": str(error)}
            if error.reason is not None:
                payload["reason"] = error.reason
            status, content_type, body = error.status, _JSON, orjson.dumps(payload)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, bytes, bytes]:
        method, path = scope["method"], scope["path"]
        routes: dict[str, tuple[str, Callable[[], tuple[int, bytes, bytes]] | None]] = {
            "/v1/rows": ("POST", None),
            "/v1/labels": ("POST", None),
            "/metrics": ("GET", self._metrics),
            "/summary": ("GET", self._summary),
            "/report": ("GET", self._report),
            "/healthz": ("GET", lambda: (200, _JSON, b'{"status":"ok"}')),
        }
        if path not in routes:
            raise HttpError(404, f"no route {path}")
        allowed, handler = routes[path]
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            raise HttpError(405, f"{path} accepts {allowed} only")
        if handler is not None:
            self.monitor.advance(self.clock())
            return handler()
        if path == "/v1/rows":
            return await self._rows(scope, receive)
        return await self._labels(scope, receive)

    async def _read(self, scope: Scope, receive: Receive) -> Any:
        if self._reading >= self.settings.max_concurrent_ingest:
            self.monitor.drop("busy")
            raise HttpError(503, "the monitor is busy; the batch was dropped and counted")
        self._reading += 1
        try:
            body = await _read_body(scope, receive, self.settings.max_body_bytes)
        finally:
            self._reading -= 1
        if _content_type(scope) == batches.BINARY_CONTENT_TYPE.encode():
            try:
                return batches.decode_binary(body, compact=True)
            except batches.BatchError as error:
                status = 400 if error.reason == "malformed_json" else 422
                raise HttpError(status, str(error), error.reason) from error
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise HttpError(400, f"the body is not valid JSON: {error}", "malformed_json") from error

    async def _rows(self, scope: Scope, receive: Receive) -> tuple[int, bytes, bytes]:
        monitor = self.monitor
        document: Any = None
        try:
            document = await self._read(scope, receive)
            batch = batches.parse(
                document,
                monitor.layout,
                max_rows=self.settings.max_batch_rows,
                max_missing_share=self.settings.max_missing_share,
                metadata_keys=monitor.fairness_attributes,
            )
        except batches.BatchError as error:
            monitor.reject(error.reason, _claimed_rows(document))
            if error.reason == "missing_storm" and self.decision_log is not None:
                # A well-formed batch kept out of the windows was still answered: log the decisions.
                self.decision_log.offer(document, _claimed_rows(document))
            raise HttpError(
                413 if error.reason == "too_many_rows" else 422, str(error), error.reason
            ) from error
        except HttpError as error:
            if error.reason is not None:
                monitor.reject(error.reason, 0)
            raise
        monitor.ingest(batch, self.clock())
        if self.decision_log is not None:
            self.decision_log.offer(document, batch.rows)
        return 202, _JSON, orjson.dumps({"accepted": batch.rows})

    async def _labels(self, scope: Scope, receive: Receive) -> tuple[int, bytes, bytes]:
        document = await self._read(scope, receive)
        try:
            label_batch = batches.parse_labels(
                document, self.monitor.reference.task, self.settings.max_batch_rows
            )
        except batches.BatchError as error:
            raise HttpError(422, str(error), error.reason) from error
        joined = self.monitor.ingest_labels(label_batch, self.clock())
        return 202, _JSON, orjson.dumps({"accepted": len(label_batch.request_ids), "joined": joined})

    def _metrics(self) -> tuple[int, bytes, bytes]:
        return 200, exposition.CONTENT_TYPE_LATEST.encode(), prometheus_client.generate_latest(self.registry)

    def _summary(self) -> tuple[int, bytes, bytes]:
        document = views.summary(self.monitor, self.clock())
        return 200, _JSON, orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)

    def _report(self) -> tuple[int, bytes, bytes]:
        return 200, b"text/html; charset=utf-8", report.render(self.monitor, self.clock()).encode()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.decision_log is not None:
                    try:
                        await asyncio.to_thread(self.decision_log.start)
                    except Exception as error:
                        await send({"type": "lifespan.startup.failed", "message": f"decision log: {error}"})
                        return
                self._ticker = asyncio.create_task(self._tick())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._ticker is not None:
                    self._ticker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._ticker
                if self.decision_log is not None:
                    await asyncio.to_thread(self.decision_log.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_seconds)
            self.monitor.advance(self.clock())


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise HttpError(
                413, f"the body has {int(value)} bytes, more than the limit of {limit}", "too_large"
            )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "the client went away before the body was complete", "malformed_json")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the body is larger than the limit of {limit} bytes", "too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _content_type(scope: Scope) -> bytes:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media_type: bytes = value.split(b";", 1)[0].strip().lower()
            return media_type
    return b""


def _claimed_rows(document: Any) -> int:
    """Rows a rejected batch claimed to have, for the rejected-rows counter (best effort)."""
    if isinstance(document, dict):
        ids = batches.row_ids(document)
        if isinstance(ids, list):
            return len(ids)
        features = document.get("features")
        if isinstance(features, dict):
            for values in features.values():
                if isinstance(values, list | np.ndarray):
                    return len(values)
    return 0
