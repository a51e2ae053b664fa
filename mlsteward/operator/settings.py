"""The operator's one settings object: flags map one-to-one onto fields (plus ``MLSTEWARD_OPERATOR_*``).

Nothing here reads the environment at import: :func:`parse` does, when the CLI calls it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

ENV_PREFIX = "MLSTEWARD_OPERATOR_"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the operator needs besides the cluster's objects.

    Every field is a flag (``--image`` for ``image``) and an environment variable
    (``MLSTEWARD_OPERATOR_IMAGE``); a flag wins over the environment.
    """

    image: str = "mlsteward:0.1.0"
    """Image of the trainer, server and monitor containers (one image, three programs)."""
    image_pull_policy: str = "IfNotPresent"
    """imagePullPolicy of every container the operator creates."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (comma-separated); empty: the whole cluster."""
    store_mount_path: str = "/var/lib/mlsteward/store"
    """Where the artifact store PVC is mounted in training, serving and monitor containers."""
    store_root: str = ""
    """Where the operator itself sees artifact stores, one directory per claim name
    (``<store_root>/<claimName>``), to verify cached artifacts; empty: no cache hits."""
    training_backoff_limit: int = 1
    """backoffLimit of training Jobs (bad input, exit code 2, never retries)."""
    training_ttl_seconds: int = 86400
    """ttlSecondsAfterFinished of training Jobs, in seconds."""
    training_node_selector: tuple[tuple[str, str], ...] = ()
    """nodeSelector of training pods (``key=value,key=value``), e.g. a dedicated node pool."""
    server_port: int = 8080
    """Port of the inference server in serving pods."""
    monitor_port: int = 8082
    """Port of the drift-monitor sidecar (metrics and /summary)."""
    cluster_domain: str = "cluster.local"
    """DNS domain of Services, for the endpoint URL in Deployment status."""
    resync_seconds: float = 300.0
    """Every object is reconciled again at least this often, in seconds, events or not."""
    training_poll_seconds: float = 30.0
    """A Model with a running version is reconciled again at least this often, in seconds."""
    summary_timeout_seconds: float = 3.0
    """Timeout of one monitor sidecar /summary request, in seconds."""
    workers: int = 128
    """Objects reconciled concurrently."""
    watch_timeout_seconds: int = 60
    """Server-side timeout of watch requests (and the client's, plus slack), in seconds."""
    liveness_endpoint: str = ""
    """The liveness endpoint, e.g. http://0.0.0.0:8081/healthz (503 once a watch or the work
    queue has stopped); empty: none."""
    metrics_port: int = 0
    """Port of the operator's Prometheus metrics (``GET /metrics``); 0: none. The chart sets 8080."""
    metrics_host: str = "0.0.0.0"
    """Address the metrics server binds (the chart binds the pod IP)."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""


_FIELDS = {field.name: field for field in dataclasses.fields(Settings)}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _convert(name: str, raw: str) -> Any:
    default = _FIELDS[name].default
    if name == "namespaces":
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if name == "training_node_selector":
        pairs = []
        for part in raw.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"training_node_selector: {part!r} is not key=value")
            pairs.append((key.strip(), value.strip()))
        return tuple(pairs)
    if isinstance(default, bool):
        return raw.lower() in {"1", "true", "yes"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def parser() -> argparse.ArgumentParser:
    """The argument parser: one flag per settings field."""
    result = argparse.ArgumentParser(
        prog="mlsteward operator",
        description="The mlsteward Kubernetes operator. Every flag is also an environment "
        f"variable {ENV_PREFIX}<FLAG_NAME>.",
    )
    for name in _FIELDS:
        result.add_argument(_flag(name), dest=name, default=None, metavar="VALUE")
    return result


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags, then ``MLSTEWARD_OPERATOR_*`` variables, then defaults."""
    environ = os.environ if environ is None else environ
    args = vars(parser().parse_args(list(argv)))
    values: dict[str, Any] = {}
    for name in _FIELDS:
        raw = args[name]
        if raw is None:
            raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _convert(name, raw)
    settings = Settings(**values)
    if settings.store_root and not pathlib.PurePath(settings.store_root).is_absolute():
        raise ValueError(f"store_root must be an absolute path, not {settings.store_root!r}")
    return settings
