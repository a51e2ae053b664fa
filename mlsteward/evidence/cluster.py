"""A small synchronous, read-only Kubernetes API client for the evidence commands.

It reads the caller's kubeconfig (``$KUBECONFIG``, else ``~/.kube/config``; client certificates,
tokens and CAs, inline ``-data`` fields too) and only GETs, so what a command shows is exactly
what the caller's RBAC lets them read.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pathlib
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import yaml

Obj = dict[str, Any]
GROUP_VERSION = "mlsteward.io/v1alpha1"
TIMEOUT_S = 30.0


class ClusterError(Exception):
    """The cluster could not be read: no kubeconfig, unreachable, or an HTTP error (``status``)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _named(items: list[Obj], name: str, what: str) -> Obj:
    for item in items or []:
        if item.get("name") == name:
            return item
    raise ClusterError(f"the kubeconfig has no {what} named {name!r}")


class Cluster:
    """The current context of a kubeconfig: its server, credentials and default namespace."""

    def __init__(self, kubeconfig: pathlib.Path) -> None:
        try:
            config = yaml.safe_load(kubeconfig.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ClusterError(f"cannot read the kubeconfig {kubeconfig}: {error}") from error
        base = kubeconfig.resolve().parent
        current = config.get("current-context")
        if not current:
            raise ClusterError(f"the kubeconfig {kubeconfig} has no current-context")
        context = _named(config.get("contexts") or [], current, "context")["context"]
        cluster = _named(config.get("clusters") or [], context["cluster"], "cluster")["cluster"]
        user = (
            _named(config.get("users") or [], context["user"], "user")["user"] if context.get("user") else {}
        )
        self.server: str = str(cluster["server"]).rstrip("/")
        self.namespace: str = str(context.get("namespace") or "default")
        self._token: str | None = user.get("token")
        self._ssl = ssl.create_default_context()
        self._scratch = tempfile.TemporaryDirectory(prefix="mlsteward-kubeconfig-")
        if cluster.get("insecure-skip-tls-verify"):
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        elif "certificate-authority-data" in cluster:
            self._ssl.load_verify_locations(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
            )
        elif "certificate-authority" in cluster:
            self._ssl.load_verify_locations(cafile=str(base / cluster["certificate-authority"]))
        cert, key = self._material(user, "client-certificate", base), self._material(user, "client-key", base)
        if cert is not None and key is not None:
            self._ssl.load_cert_chain(str(cert), str(key))

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Cluster:
        """The kubeconfig ``kubectl`` would use: the first file in ``$KUBECONFIG``, else ~/.kube/config."""
        source = os.environ if env is None else env
        listed = [p for p in source.get("KUBECONFIG", "").split(os.pathsep) if p]
        path = pathlib.Path(listed[0]) if listed else pathlib.Path.home() / ".kube" / "config"
        if not path.is_file():
            raise ClusterError(
                f"no kubeconfig at {path}: set KUBECONFIG (verify and docs also run offline: --artifact)"
            )
        return cls(path)

    def _material(self, user: Obj, field: str, base: pathlib.Path) -> pathlib.Path | None:
        if f"{field}-data" in user:
            # ssl loads certificates only from files: a private copy in our own temp directory.
            path = pathlib.Path(self._scratch.name) / f"{field}.pem"
            path.write_bytes(base64.b64decode(user[f"{field}-data"]))
            path.chmod(0o600)
            return path
        if field in user:
            return base / str(user[field])
        return None

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Obj:
        """GET ``path`` (``/api/...`` or ``/apis/...``); HTTP errors raise ClusterError with the status."""
        url = self.server + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=self._ssl) as response:
                document: Obj = json.loads(response.read())
                return document
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("message", detail)
            raise ClusterError(f"GET {path}: HTTP {error.code}: {detail}", error.code) from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ClusterError(f"cannot reach the API server {self.server}: {reason}") from error

    def list_items(self, path: str) -> list[Obj]:
        """Every item of a list, following ``continue`` tokens."""
        items: list[Obj] = []
        token = ""
        while True:
            page = self.get(path, {"limit": "500", **({"continue": token} if token else {})})
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items


def resource_path(plural: str, namespace: str | None, name: str | None = None) -> str:
    """The path of one of our resources (``models``, ``deployments``, ``monitors``)."""
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{GROUP_VERSION}{scope}/{plural}" + (f"/{name}" if name else "")
