"""The HTTP layer: a lean ASGI application; every route is in :func:`routes`, errors are written in one place.

No framework: uvicorn (httptools, uvloop) hands us the scope, we read the body with a size limit,
call the handler, and write one response. Handlers return ``(status, body, headers)`` or raise a
:class:`~mlsteward.serving.errors.ServingError`, which :meth:`App.__call__` turns into the
protocol's ``{"error": ...}`` body; anything else is logged and answered 500 (never seen in the
fuzz tests, which is the point).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import prometheus_client

from mlsteward import __version__
from mlsteward.serving import binary, errors, protocol, service

_log = logging.getLogger("mlsteward.serving.app")
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Result = tuple[int, bytes, Headers]
JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
_BINARY_CONTENT_TYPE = (b"content-type", b"application/octet-stream")


@dataclasses.dataclass(slots=True)
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: bytes
    started: float
    json_length: bytes | None = None
    """The Inference-Header-Content-Length header (binary tensor data extension), when sent."""


Handler = Callable[[Request], Awaitable[Result]]


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")


def routes(app: App) -> list[Route]:
    """Every HTTP route of ``mlsteward serve`` (the OpenAPI document in openapi.py mirrors this list)."""
    return [
        Route("POST", "/v2/models/{name}/infer", app.infer),
        Route("POST", "/v2/models/{name}/versions/{version}/infer", app.infer),
        Route("POST", "/v1/models/{name}:predict", app.predict_v1),
        Route("GET", "/v2/health/live", app.live),
        Route("GET", "/v2/health/ready", app.ready),
        Route("GET", "/v2", app.server_metadata),
        Route("GET", "/v2/models/{name}", app.model_metadata),
        Route("GET", "/v2/models/{name}/versions/{version}", app.model_metadata),
        Route("GET", "/v2/models/{name}/ready", app.model_ready),
        Route("GET", "/v2/models/{name}/versions/{version}/ready", app.model_ready),
        Route("GET", "/v1/models/{name}", app.model_status_v1),
        Route("GET", "/metrics", app.prometheus),
        Route("GET", "/openapi.json", app.openapi),
    ]


class App:
    """The ASGI application; lifespan events are handled by :mod:`mlsteward.serving.server`."""

    def __init__(self, svc: service.Service, openapi_document: dict[str, Any], max_body_bytes: int) -> None:
        self.service = svc
        self._metrics = svc.metrics
        self._openapi = orjson.dumps(openapi_document)
        self._max_body = max_body_bytes
        self._routes = [(route, route.pattern) for route in routes(self)]
        self._static = {(r.method, r.template): r for r in routes(self) if "{" not in r.template}
        self.lifespan: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def handle(self, method: str, path: str, body: bytes, json_length: bytes | None = None) -> Result:
        """Answer one complete request; never raises (the transports call this).

        ``json_length`` is the value of the request's Inference-Header-Content-Length header.
        """
        started = time.perf_counter()
        try:
            route, params = self._match(method, path)
            return await route.handler(Request(method, path, params, body, started, json_length))
        except errors.ServingError as error:
            return error.status, protocol.encode_error(error.message), JSON_HEADERS
        except Exception as error:  # the last line of defence: log, answer 500, keep serving
            _log.exception("unhandled error on %s %s", method, path)
            return 500, protocol.encode_error(f"internal error: {type(error).__name__}"), JSON_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The same application as ASGI (``--http uvicorn``)."""
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and self.lifespan is not None:
                await self.lifespan(scope, receive, send)
            return
        try:
            body = await self._body(scope, receive)
        except errors.ServingError as error:
            status, payload, headers = error.status, protocol.encode_error(error.message), JSON_HEADERS
        except _DisconnectedError:
            return
        else:
            json_length = next((value for name, value in scope["headers"] if name == binary.HEADER), None)
            status, payload, headers = await self.handle(scope["method"], scope["path"], body, json_length)
        head = [*headers, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": payload})

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        static = self._static.get((method, path))
        if static is not None:
            return static, {}
        allowed = []
        for route, pattern in self._routes:
            found = pattern.match(path)
            if found is not None:
                if route.method == method:
                    return route, found.groupdict()
                allowed.append(route.method)
        if allowed:
            raise errors.MethodNotAllowedError(
                f"{method} is not allowed on {path}; use {', '.join(sorted(set(allowed)))}"
            )
        raise errors.NotFoundError(f"no route {method} {path}")

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    raise errors.BadRequestError("Content-Length is not a number")
                if int(value) > self._max_body:
                    raise errors.PayloadTooLargeError(
                        f"request body is {int(value)} bytes: at most {self._max_body} are allowed"
                    )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _DisconnectedError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise errors.PayloadTooLargeError(f"request body exceeds {self._max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # --- inference ----------------------------------------------------------------------------

    async def infer(self, request: Request) -> Result:
        name, version = request.params["name"], request.params.get("version")
        label, answered, status = "(unknown)", "", 500
        self._metrics.in_flight.inc()
        try:
            snapshot = self.service.live(name)
            label = name
            json_part, binary_data = binary.split_body(request.body, request.json_length)
            document = protocol.load_json(json_part)
            model, route = self.service.pick(snapshot, version, protocol.request_id(document))
            answered = model.version
            parsed = protocol.parse_v2(
                document,
                model.signature,
                model.runtime.output_names,
                self.service.config.server.max_rows,
                binary_data,
            )
            top_k = self.service.config.explain.top_k if parsed.reason_codes else None
            answer = await self.service.score(snapshot, model, route, parsed, top_k)
            selected = parsed.outputs or model.runtime.output_names
            outputs, datatypes = answer.outputs, model.runtime.datatypes
            if parsed.reason_codes:
                datatypes = {**datatypes, protocol.REASON_CODES: "BYTES"}
                if parsed.outputs is None:
                    selected = (*selected, protocol.REASON_CODES)
            payload, header_length = protocol.encode_v2(
                model_name=snapshot.model,
                version=model.version,
                rid=answer.request_id,
                route=route,
                outputs=outputs,
                datatypes=datatypes,
                selected=selected,
                binary_outputs=parsed.binary_outputs,
            )
            status = 200
            if header_length is None:
                return 200, payload, [*JSON_HEADERS, (b"x-model-version", model.version.encode())]
            return (
                200,
                payload,
                [
                    _BINARY_CONTENT_TYPE,
                    (binary.HEADER, b"%d" % header_length),
                    (b"x-model-version", model.version.encode()),
                ],
            )
        except errors.ServingError as error:
            status = error.status
            raise
        finally:
            self._metrics.in_flight.dec()
            self._metrics.request(label, answered, status, time.perf_counter() - request.started)

    async def predict_v1(self, request: Request) -> Result:
        name = request.params["name"]
        label, answered, status = "(unknown)", "", 500
        self._metrics.in_flight.inc()
        try:
            snapshot = self.service.live(name)
            label = name
            document = protocol.load_json(request.body)
            model, route = self.service.pick(snapshot, None, None)
            answered = model.version
            parsed = protocol.parse_v1(document, model.signature, self.service.config.server.max_rows)
            answer = await self.service.score(snapshot, model, route, parsed)
            predictions = answer.outputs["label"] if "label" in answer.outputs else answer.outputs["variable"]
            status = 200
            return (
                200,
                protocol.encode_v1(model.version, route, predictions),
                [*JSON_HEADERS, (b"x-model-version", model.version.encode())],
            )
        except errors.ServingError as error:
            status = error.status
            raise
        finally:
            self._metrics.in_flight.dec()
            self._metrics.request(label, answered, status, time.perf_counter() - request.started)

    # --- health and metadata ------------------------------------------------------------------

    async def live(self, request: Request) -> Result:
        return 200, b'{"live":true}', JSON_HEADERS

    async def ready(self, request: Request) -> Result:
        if self.service.ready:
            return 200, b'{"ready":true}', JSON_HEADERS
        reason = "draining" if self.service.draining else self.service.not_ready_reason
        return 503, orjson.dumps({"ready": False, "error": f"not ready: {reason}"}), JSON_HEADERS

    async def server_metadata(self, request: Request) -> Result:
        return (
            200,
            orjson.dumps({"name": "mlsteward", "version": __version__, "extensions": ["binary_tensor_data"]}),
            JSON_HEADERS,
        )

    async def model_metadata(self, request: Request) -> Result:
        snapshot = self.service.live(request.params["name"])
        version = request.params.get("version")
        model = self.service.pick(snapshot, version, None)[0] if version is not None else snapshot.champion
        document = model.metadata()
        if version is None:
            document["versions"] = snapshot.versions()
        return 200, orjson.dumps(document), JSON_HEADERS

    async def model_ready(self, request: Request) -> Result:
        name, version = request.params["name"], request.params.get("version")
        snapshot = self.service.snapshot
        if snapshot is not None and name != snapshot.model:
            raise errors.NotFoundError(f"unknown model {name!r}; this server serves {snapshot.model!r}")
        ready = self.service.ready
        if ready and version is not None:
            self.service.pick(snapshot, version, None)  # type: ignore[arg-type]  # 404 for unknown versions
        document = {"name": name, "ready": ready}
        if version is not None:
            document["version"] = version
        return (200 if ready else 503), orjson.dumps(document), JSON_HEADERS

    async def model_status_v1(self, request: Request) -> Result:
        snapshot = self.service.live(request.params["name"])
        return 200, orjson.dumps({"name": snapshot.model, "ready": self.service.ready}), JSON_HEADERS

    async def prometheus(self, request: Request) -> Result:
        body = prometheus_client.generate_latest(self._metrics.registry)
        return 200, body, [(b"content-type", prometheus_client.CONTENT_TYPE_LATEST.encode())]

    async def openapi(self, request: Request) -> Result:
        return 200, self._openapi, JSON_HEADERS


class _DisconnectedError(Exception):
    """The client went away before sending its whole body."""
