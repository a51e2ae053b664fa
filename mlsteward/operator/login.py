"""Credentials for the API server: the pod's ServiceAccount, or the current kubeconfig context.

Read again at every (re)login, so a rotated ServiceAccount token is picked up. Only what the
operator and its commands need is supported: a server URL, a CA (file or data, or
``insecure-skip-tls-verify``), and a bearer token (value or file) or a client certificate
(file or data). An exec plugin or a username/password user is refused with a message.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Where the ServiceAccount token and CA are mounted, when not at the usual place. The chart sets
# it to the usual path, which the development node agent maps to its host directory.
SERVICE_ACCOUNT_DIR_ENV = "MLSTEWARD_SERVICE_ACCOUNT_DIR"


class LoginError(Exception):
    """No usable credentials: the message says what was looked at and what is missing."""


@dataclasses.dataclass(frozen=True)
class Credentials:
    server: str
    ca_path: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    certificate_path: str | None = None
    certificate_data: bytes | None = None
    private_key_path: str | None = None
    private_key_data: bytes | None = None
    default_namespace: str | None = None


def in_cluster() -> Credentials | None:
    """The pod's ServiceAccount (``$KUBERNETES_SERVICE_HOST`` and a token file), else None."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    account = pathlib.Path(os.environ.get(SERVICE_ACCOUNT_DIR_ENV) or SERVICE_ACCOUNT_DIR)
    if not (host and port and (account / "token").exists()):
        return None
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    namespace_file = account / "namespace"
    return Credentials(
        server=server,
        ca_path=str(account / "ca.crt"),
        token=(account / "token").read_text(encoding="utf-8").strip(),
        default_namespace=namespace_file.read_text(encoding="utf-8").strip()
        if namespace_file.exists()
        else None,
    )


def kubeconfig(path: str | None = None) -> Credentials:
    """The current context of ``path`` (default: the first existing file of ``$KUBECONFIG``,
    else ``~/.kube/config``)."""
    candidates = [path] if path else [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    candidates = candidates or [str(pathlib.Path.home() / ".kube" / "config")]
    found = next((pathlib.Path(p) for p in candidates if pathlib.Path(p).is_file()), None)
    if found is None:
        raise LoginError(f"no kubeconfig found (looked at {', '.join(candidates)}; set $KUBECONFIG)")
    config: dict[str, Any] = yaml.safe_load(found.read_text(encoding="utf-8")) or {}
    context_name = config.get("current-context")
    context = _named(config, "contexts", context_name, found, "context")
    cluster = _named(config, "clusters", context.get("cluster"), found, "cluster")
    user = _named(config, "users", context.get("user"), found, "user") if context.get("user") else {}
    if "exec" in user or "auth-provider" in user or "username" in user:
        raise LoginError(
            f"{found}: user {context.get('user')!r} logs in with an exec plugin, an auth provider or a "
            "password; only tokens and client certificates are supported"
        )
    if not cluster.get("server"):
        raise LoginError(f"{found}: cluster {context.get('cluster')!r} has no server")
    base = found.parent

    def file(value: Any) -> str | None:
        return None if not value else str(base / str(value))

    def data(value: Any) -> bytes | None:
        return None if not value else str(value).encode()

    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = pathlib.Path(str(file(user["tokenFile"]))).read_text(encoding="utf-8").strip()
    return Credentials(
        server=str(cluster["server"]),
        ca_path=file(cluster.get("certificate-authority")),
        ca_data=data(cluster.get("certificate-authority-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=str(token) if token else None,
        certificate_path=file(user.get("client-certificate")),
        certificate_data=data(user.get("client-certificate-data")),
        private_key_path=file(user.get("client-key")),
        private_key_data=data(user.get("client-key-data")),
        default_namespace=context.get("namespace"),
    )


def _named(config: dict[str, Any], section: str, name: Any, found: pathlib.Path, what: str) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            value: dict[str, Any] = entry.get(what) or {}
            return value
    raise LoginError(f"{found}: no {what} named {name!r} (current-context {config.get('current-context')!r})")


def credentials() -> Credentials:
    """The pod's ServiceAccount when in a cluster, else the kubeconfig."""
    return in_cluster() or kubeconfig()
