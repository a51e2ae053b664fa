"""The operator's one shared Kubernetes API client (aiohttp), and its error family.

Writes are idempotent: children with server-side apply (``application/apply-patch+yaml``, a
field manager, ``force``), status with a JSON merge patch carrying the ``resourceVersion``
that was read (so a stale read fails with 409 and is retried, never overwrites).
Credentials come from ``login`` (the pod's ServiceAccount token or the kubeconfig).
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from mlsteward import api
from mlsteward.operator import conditions, login

# Connections to the API server, shared by all workers. Each TLS connection holds about 128 KiB
# of buffers, and the API server on a small control plane gains nothing from more concurrency
# than this: requests beyond it wait for a connection instead.
CONNECTIONS = 32

# kind -> (API prefix, plural) for everything the operator reads or writes.
_KINDS: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "Pod"): ("/api/v1", "pods"),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "Event"): ("/api/v1", "events"),
    ("batch/v1", "Job"): ("/apis/batch/v1", "jobs"),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    (api.API_VERSION, "Model"): (f"/apis/{api.API_VERSION}", "models"),
    (api.API_VERSION, "Deployment"): (f"/apis/{api.API_VERSION}", "deployments"),
    (api.API_VERSION, "Monitor"): (f"/apis/{api.API_VERSION}", "monitors"),
    (api.API_VERSION, "Approval"): (f"/apis/{api.API_VERSION}", "approvals"),
}


class KubeError(Exception):
    """A Kubernetes API request failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(KubeError):
    pass


class ConflictError(KubeError):
    pass


class ForbiddenError(KubeError):
    pass


def path(api_version: str, kind: str, namespace: str, name: str | None = None, sub: str = "") -> str:
    prefix, plural = _KINDS[(api_version, kind)]
    result = f"{prefix}/namespaces/{namespace}/{plural}"
    if name is not None:
        result += f"/{name}"
    if sub:
        result += f"/{sub}"
    return result


def path_of(body: dict[str, Any], sub: str = "") -> str:
    meta = body["metadata"]
    return path(body["apiVersion"], body["kind"], meta["namespace"], meta["name"], sub)


def _ssl_context(info: login.Credentials) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context()
    if info.ca_path:
        context.load_verify_locations(cafile=info.ca_path)
    elif info.ca_data:
        text = info.ca_data.decode()
        if "BEGIN CERTIFICATE" not in text:
            text = base64.b64decode(text).decode()
        context.load_verify_locations(cadata=text)
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data and info.private_key_data:
        # ssl wants files for client certificates.
        files = []
        for data in (info.certificate_data, info.private_key_data):
            raw = data
            if b"-----BEGIN" not in raw:
                raw = base64.b64decode(raw)
            handle = tempfile.NamedTemporaryFile(delete=False, suffix=".pem")  # noqa: SIM115
            handle.write(raw)
            handle.close()
            files.append(handle.name)
        cert, key = files
    if cert:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


def _headers(info: login.Credentials) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if info.token:
        headers["Authorization"] = f"Bearer {info.token}"
    return headers


class Client:
    """A small async client over the paths the operator uses.

    Usage::

        client = Client(lambda: info)
        job = await client.get(kube.path("batch/v1", "Job", "ns", "credit-v1"))
        await client.apply(manifest, "mlsteward-operator")
    """

    def __init__(self, credentials: Callable[[], Awaitable[login.Credentials]]) -> None:
        self._credentials = credentials
        self._info: login.Credentials | None = None
        self._session: aiohttp.ClientSession | None = None
        self._watch_session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | bool = True
        # uid -> resourceVersion of the last object this client wrote (its own echo on a watch).
        self.written: dict[str, str] = {}

    async def _ensure(self) -> tuple[aiohttp.ClientSession, login.Credentials]:
        if self._session is None or self._info is None:
            self._info = await self._credentials()
            self._ssl = _ssl_context(self._info)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=CONNECTIONS),
                timeout=aiohttp.ClientTimeout(total=30, connect=5),
            )
        return self._session, self._info

    async def _ensure_watches(self) -> tuple[aiohttp.ClientSession, login.Credentials]:
        # Watches hold their connection for minutes: a pool of their own, so they never take
        # the slots that requests wait for.
        _, info = await self._ensure()
        if self._watch_session is None:
            self._watch_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=0),
                timeout=aiohttp.ClientTimeout(total=None, connect=5),
            )
        return self._watch_session, info

    async def close(self) -> None:
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()
        self._session = None
        self._watch_session = None
        self._info = None

    async def watch(
        self, url_path: str, params: dict[str, str], read_timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """The watch events of ``url_path`` (``watch=true`` is added), one dict each, until the
        API server ends the stream; :class:`KubeError` when it cannot be opened or breaks
        (``read_timeout``: seconds without a byte, e.g. an API server gone silent)."""
        session, info = await self._ensure_watches()
        try:
            async with session.get(
                info.server.rstrip("/") + url_path,
                params={**params, "watch": "true"},
                headers=_headers(info),
                timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=read_timeout),
            ) as response:
                if response.status == 401:
                    await self.close()
                if response.status >= 400:
                    raise _error(response.status, "WATCH", url_path, await response.read())
                pending = bytearray()
                async for chunk in response.content.iter_any():
                    pending += chunk
                    start = 0
                    while (end := pending.find(b"\n", start)) >= 0:
                        if end > start:
                            yield orjson.loads(pending[start:end])
                        start = end + 1
                    del pending[:start]
        except aiohttp.ClientError as error:
            raise KubeError(0, f"WATCH {url_path}: no answer from the API server: {error}") from error
        except TimeoutError as error:
            raise KubeError(
                0, f"WATCH {url_path}: nothing from the API server for {read_timeout:.0f}s"
            ) from error

    async def request(
        self,
        method: str,
        url_path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        session, info = await self._ensure()
        headers = _headers(info)
        data = None if body is None else orjson.dumps(body)
        if data is not None:
            headers["Content-Type"] = content_type
        try:
            async with session.request(
                method, info.server.rstrip("/") + url_path, params=params, data=data, headers=headers
            ) as response:
                payload = await response.read()
                if response.status == 401:
                    await self.close()  # log in again next time (rotated token)
                if response.status >= 400:
                    raise _error(response.status, method, url_path, payload)
                return orjson.loads(payload) if payload else None
        except aiohttp.ClientError as error:
            raise KubeError(0, f"{method} {url_path}: no answer from the API server: {error}") from error
        except TimeoutError as error:
            raise KubeError(0, f"{method} {url_path}: the API server did not answer in time") from error

    async def get(self, url_path: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request("GET", url_path)
        except NotFoundError:
            return None
        return result

    async def list(self, url_path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        items, _ = await self.list_with_version(url_path, label_selector)
        return items

    async def list_with_version(
        self, url_path: str, label_selector: str | None = None
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """The items, and the list's ``resourceVersion`` (where a watch of it starts)."""
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", url_path, params=params)
        items: builtins.list[dict[str, Any]] = result.get("items") or []
        return items, str((result.get("metadata") or {}).get("resourceVersion", ""))

    async def apply(self, manifest: dict[str, Any], field_manager: str) -> dict[str, Any]:
        """Server-side apply ``manifest`` as ``field_manager``, taking over conflicting fields."""
        result: dict[str, Any] = await self.request(
            "PATCH",
            path_of(manifest),
            params={"fieldManager": field_manager, "force": "true"},
            body=manifest,
            content_type="application/apply-patch+yaml",
        )
        self._remember(result)
        return result

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """POST ``manifest``; :class:`ConflictError` (409 AlreadyExists) when its name is taken.

        For children with deterministic names that must be created once (a version's Job):
        the 409 says the child is there, which the caller then reads instead of assuming."""
        meta = manifest["metadata"]
        result: dict[str, Any] = await self.request(
            "POST", path(manifest["apiVersion"], manifest["kind"], meta["namespace"]), body=manifest
        )
        return result

    def _remember(self, result: Any) -> None:
        meta = result.get("metadata") if isinstance(result, dict) else None
        if meta and meta.get("uid") and meta.get("resourceVersion"):
            self.written[meta["uid"]] = meta["resourceVersion"]

    def is_own_write(self, body: dict[str, Any]) -> bool:
        """True when ``body`` is exactly the version this client wrote last: its watch event
        carries nothing a reconcile has not already seen."""
        meta = body.get("metadata") or {}
        return bool(meta.get("uid")) and self.written.get(meta["uid"]) == meta.get("resourceVersion")

    def forget(self, body: dict[str, Any]) -> None:
        self.written.pop((body.get("metadata") or {}).get("uid", ""), None)

    async def merge_patch(self, url_path: str, patch: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PATCH", url_path, body=patch, content_type="application/merge-patch+json"
        )
        # A status write is a reconciler's own result: its echo carries nothing new. A metadata
        # change (a retrain or champion annotation, often on another kind) is a request that the
        # object's reconciler must see, so its echo is not skipped.
        if url_path.endswith("/status"):
            self._remember(result)
        return result

    async def patch_status(self, body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Merge ``status`` into the object's status, failing with :class:`ConflictError` when the
        object changed since ``body`` was read."""
        patch = {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "status": status}
        return await self.merge_patch(path_of(body, "status"), patch)

    async def delete(self, manifest: dict[str, Any]) -> None:
        with contextlib.suppress(NotFoundError):
            await self.request("DELETE", path_of(manifest), body={"propagationPolicy": "Background"})

    async def emit_event(
        self, body: dict[str, Any], reason: conditions.Reason, message: str, type_: str, now: str
    ) -> None:
        meta = body["metadata"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name'][:200]}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": str(reason),
            "message": message[:1024],
            "type": type_,
            "source": {"component": "mlsteward-operator"},
            "reportingComponent": "mlsteward.io/operator",
            "reportingInstance": "mlsteward-operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.request("POST", path("v1", "Event", meta["namespace"]), body=event)


def _error(status: int, method: str, url_path: str, payload: bytes) -> KubeError:
    try:
        message = str(orjson.loads(payload).get("message", ""))
    except (orjson.JSONDecodeError, AttributeError):
        message = payload[:500].decode(errors="replace")
    text = f"{method} {url_path}: HTTP {status}: {message}"
    if status == 404:
        return NotFoundError(status, text)
    if status == 409:
        return ConflictError(status, text)
    if status == 403:
        return ForbiddenError(status, text)
    return KubeError(status, text)
