"""A small async Kubernetes API client: just what the development node agent needs.

It reads a kubeconfig (client certificate, token, CA; inline ``-data`` fields too), talks
JSON over aiohttp, and offers get/list/create/patch/delete plus a watch stream. API
failures become :class:`ApiError` carrying the HTTP status and the server's message.
"""

from __future__ import annotations

import base64
import json
import pathlib
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import yaml

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(RuntimeError):
    """The API server answered with an error status."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status


class Kubeconfig:
    """The server, TLS context and credentials of a kubeconfig's current context."""

    def __init__(self, path: pathlib.Path) -> None:
        config = yaml.safe_load(path.read_text())
        base = path.resolve().parent
        name = config["current-context"]
        context = _named(config["contexts"], name)["context"]
        cluster = _named(config["clusters"], context["cluster"])["cluster"]
        user = _named(config.get("users") or [], context["user"])["user"] if context.get("user") else {}
        self.server: str = cluster["server"].rstrip("/")
        self.token: str | None = user.get("token")
        self.ssl = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            self.ssl.check_hostname = False
            self.ssl.verify_mode = ssl.CERT_NONE
        elif "certificate-authority-data" in cluster:
            self.ssl.load_verify_locations(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
            )
        elif "certificate-authority" in cluster:
            self.ssl.load_verify_locations(cafile=str(base / cluster["certificate-authority"]))
        cert = _material(user, "client-certificate", base)
        key = _material(user, "client-key", base)
        if cert and key:
            self.ssl.load_cert_chain(str(cert), str(key))


def _named(items: list[Obj], name: str) -> Obj:
    for item in items:
        if item.get("name") == name:
            return item
    raise KeyError(f"kubeconfig has no entry named {name!r}")


def _material(user: Obj, field: str, base: pathlib.Path) -> pathlib.Path | None:
    if f"{field}-data" in user:
        # ssl only loads certificates from files; keep the decoded copy in a private temp file.
        with tempfile.NamedTemporaryFile(prefix="mlsteward-agent-", suffix=".pem", delete=False) as handle:
            handle.write(base64.b64decode(user[f"{field}-data"]))
        return pathlib.Path(handle.name)
    if field in user:
        return base / str(user[field])
    return None


class Client:
    """An API client bound to one kubeconfig; use as ``async with Client(kubeconfig) as api``."""

    def __init__(self, kubeconfig: Kubeconfig) -> None:
        self.config = kubeconfig
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        headers = {"Accept": "application/json", "User-Agent": "mlsteward-dev-agent"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        self._session = aiohttp.ClientSession(
            base_url=None,
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=self.config.ssl, limit=20),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the client is not open; use `async with Client(...)`")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout_s: float = 30,
    ) -> Obj:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self.session.request(
            method,
            self.config.server + path,
            params=dict(params or {}),
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise ApiError(response.status, method, path, _message(text))
            result: Obj = json.loads(text) if text else {}
            return result

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Obj:
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: Obj) -> Obj:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Obj, content_type: str = MERGE_PATCH) -> Obj:
        return await self.request("PATCH", path, body=body, content_type=content_type)

    async def delete(self, path: str, body: Obj | None = None) -> Obj:
        return await self.request("DELETE", path, body=body)

    async def watch(self, path: str, params: Mapping[str, str]) -> AsyncIterator[Obj]:
        """Yield watch events (``{"type", "object"}``) until the server ends the stream."""
        query = dict(params, watch="true", allowWatchBookmarks="true")
        async with self.session.get(
            self.config.server + path,
            params=query,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None),
        ) as response:
            if response.status >= 400:
                raise ApiError(response.status, "WATCH", path, _message(await response.text()))
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event: Obj = json.loads(line)
                        yield event


def _message(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    return str(body.get("message", text))[:500] if isinstance(body, dict) else text[:500]
