"""The server's settings: one nested object; every field is one flag and one ``MLSTEWARD_SERVE_*`` variable.

Nothing here runs at import. :func:`from_args` reads the flags and, for flags not given, the
environment mapping it is handed (tests pass their own instead of patching ``os.environ``).
Precedence: flag, then variable, then the default. The table :data:`FLAGS` is the one place
that maps flag ↔ section.field ↔ variable; a unit test keeps it in step with the dataclasses.

Usage::

    config = settings.from_args(["--routing", "routing.json", "--store", "/store"], os.environ)
    config.batching.max_batch_size  # 64
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

ENV_PREFIX = "MLSTEWARD_SERVE_"


class SettingsError(Exception):
    """Flags or environment that do not make a runnable configuration."""


def _cpu_budget() -> int:
    """CPUs this process may use: the cgroup quota when set (a pod's CPU limit), else the affinity."""
    count = len(os.sched_getaffinity(0))
    try:
        quota, period = pathlib.Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8080
    """TCP port to listen on."""
    routing: pathlib.Path = pathlib.Path("routing.json")
    """The routing file (contracts §5; a mounted ConfigMap in a pod)."""
    store: str = "store"
    """The content-addressed artifact store: a directory (a PVC mount in a pod), ``file://`` or
    ``s3://bucket/prefix`` (connection settings from the environment, see docs/store.md)."""
    cache_dir: pathlib.Path = pathlib.Path("/tmp/mlsteward/artifacts")
    """Where artifacts from an ``s3://`` store are downloaded, verified and kept (an emptyDir in a pod)."""
    max_body_bytes: int = 4 * 1024 * 1024
    """Largest request body accepted (bytes); larger ones get 413."""
    max_rows: int = 4096
    """Most rows in one request; more get 413."""
    drain_delay_s: float = 0.0
    """After SIGTERM: seconds to keep serving while readiness already says 503 (endpoint removal)."""
    drain_timeout_s: float = 20.0
    """After the drain delay: seconds to let in-flight requests finish before closing (s)."""
    reuse_port: bool = False
    """Bind with SO_REUSEPORT so several server processes can share one port (see docs/serving.md)."""
    log_level: str = "info"
    """Python logging level name."""
    keep_alive_s: float = 75.0
    """Idle keep-alive connections are closed after this long (s; above usual load-balancer idle timeouts)."""
    http: str = "httptools"
    """HTTP transport: ``httptools`` (the server's own, fastest) or ``uvicorn`` (ASGI)."""


@dataclasses.dataclass(frozen=True)
class BatchingSettings:
    max_batch_size: int = 64
    """Most rows scored in one ONNX Runtime call (rows)."""
    max_delay_ms: float = 0.0
    """How long a batch waits for more requests once the runtime is free (milliseconds)."""


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    intra_op_threads: int = 1
    """ONNX Runtime intra-op threads per model (0 = one per CPU of the pod)."""
    inter_op_threads: int = 1
    """ONNX Runtime inter-op threads per model."""
    warmup_rows: int = 8
    """Rows scored at load time, before a model is reported ready."""
    offload: bool = False
    """Score on a worker thread instead of the event loop (pays off with 2+ CPUs for the server alone)."""


@dataclasses.dataclass(frozen=True)
class RoutingSettings:
    poll_interval_s: float = 1.0
    """How often the routing file's mtime/inode is checked (s)."""
    model_name: str = ""
    """Overrides the model name of the routing file when set."""


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    url: str = ""
    """Base URL of the drift-monitor sidecar (contracts §4); empty disables the feed."""
    queue_rows: int = 50_000
    """Scored rows held for the monitor before new ones are dropped (rows)."""
    batch_rows: int = 1024
    """Rows sent in one POST /v1/rows (rows). Each batch has a fixed cost on the event loop
    (~0.2 ms: the header, the HTTP request), so small batches cost the server more (256 rows of
    32-row requests: ~7% of its time; 1024: ~4%); the join is sliced, so a larger batch does not
    hold up the requests behind it for long."""
    flush_interval_s: float = 0.5
    """Longest a scored row waits before it is sent (s)."""
    timeout_s: float = 5.0
    """Connect/read timeout for one POST to the monitor (s)."""


@dataclasses.dataclass(frozen=True)
class ExplainSettings:
    top_k: int = 3
    """Reason codes returned per row when a request asks for them (features)."""


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """Everything ``mlsteward serve`` reads from outside the artifacts."""

    server: ServerSettings = ServerSettings()
    batching: BatchingSettings = BatchingSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    routing: RoutingSettings = RoutingSettings()
    monitor: MonitorSettings = MonitorSettings()
    explain: ExplainSettings = ExplainSettings()

    def resolved_intra_op_threads(self) -> int:
        return self.runtime.intra_op_threads or _cpu_budget()


# "section.field" -> (flag, help). The variable is ENV_PREFIX + the flag in upper snake case.
FLAGS: dict[str, tuple[str, str]] = {
    "server.host": ("--host", "address to listen on (default 127.0.0.1)"),
    "server.port": ("--port", "TCP port (default 8080)"),
    "server.routing": ("--routing", "routing file, contracts §5 (a mounted ConfigMap)"),
    "server.store": ("--store", "artifact store: a directory, file:// or s3://bucket/prefix"),
    "server.cache_dir": ("--cache-dir", "download cache for s3:// stores (default /tmp/mlsteward/artifacts)"),
    "server.max_body_bytes": ("--max-body-bytes", "largest request body (bytes, default 4 MiB)"),
    "server.max_rows": ("--max-rows", "most rows in one request (default 4096)"),
    "server.drain_delay_s": ("--drain-delay", "seconds to keep serving after SIGTERM (default 0)"),
    "server.drain_timeout_s": ("--drain-timeout", "seconds to finish in-flight requests (default 20)"),
    "server.reuse_port": ("--reuse-port", "bind with SO_REUSEPORT (several processes, one port)"),
    "server.log_level": ("--log-level", "logging level (default info)"),
    "server.keep_alive_s": (
        "--keep-alive-timeout",
        "close idle keep-alive connections after (s, default 75)",
    ),
    "server.http": ("--http", "HTTP transport: httptools (default) or uvicorn"),
    "batching.max_batch_size": ("--max-batch-size", "most rows per ONNX Runtime call (default 64)"),
    "batching.max_delay_ms": ("--max-batch-delay-ms", "wait for more requests per batch (ms, default 0)"),
    "runtime.intra_op_threads": (
        "--intra-op-threads",
        "ONNX Runtime intra-op threads (0 = pod CPUs; default 1)",
    ),
    "runtime.inter_op_threads": ("--inter-op-threads", "ONNX Runtime inter-op threads (default 1)"),
    "runtime.warmup_rows": ("--warmup-rows", "rows scored before a model is ready (default 8)"),
    "runtime.offload": ("--offload-inference", "score on a worker thread, not the event loop"),
    "routing.poll_interval_s": ("--routing-poll-interval", "seconds between routing file checks (default 1)"),
    "routing.model_name": ("--model-name", "override the routing file's model name"),
    "monitor.url": ("--monitor-url", "drift-monitor base URL, contracts §4 (empty: no feed)"),
    "monitor.queue_rows": ("--monitor-queue-rows", "rows queued for the monitor before dropping (50000)"),
    "monitor.batch_rows": ("--monitor-batch-rows", "rows per POST /v1/rows (default 1024)"),
    "monitor.flush_interval_s": ("--monitor-flush-interval", "longest a row waits to be sent (s, 0.5)"),
    "monitor.timeout_s": ("--monitor-timeout", "timeout of one POST to the monitor (s, default 5)"),
    "explain.top_k": ("--explain-top-k", "reason codes per row when asked for (default 3)"),
}


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.removeprefix("--").replace("-", "_").upper()


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "batching": BatchingSettings,
    "runtime": RuntimeSettings,
    "routing": RoutingSettings,
    "monitor": MonitorSettings,
    "explain": ExplainSettings,
}


def _default(key: str) -> Any:
    section, name = key.split(".")
    return getattr(_SECTIONS[section](), name)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _converter(default: Any) -> Callable[[str], Any]:
    if isinstance(default, bool):
        return _parse_bool
    if isinstance(default, pathlib.Path):
        return pathlib.Path
    converter: Callable[[str], Any] = type(default)
    return converter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlsteward serve",
        description="Serve ONNX artifacts over the Open Inference Protocol v2 (and KServe v1). "
        f"Every flag can also be set by the environment variable {ENV_PREFIX}<FLAG>.",
    )
    for key, (flag, help_text) in FLAGS.items():
        dest = key.replace(".", "__")
        if isinstance(_default(key), bool):
            parser.add_argument(
                flag, dest=dest, action="store_const", const="true", default=None, help=help_text
            )
        else:
            metavar = flag.removeprefix("--").replace("-", "_").upper()
            parser.add_argument(
                flag, dest=dest, default=None, metavar=metavar, help=f"{help_text} [{env_name(flag)}]"
            )
    return parser


def from_args(argv: Sequence[str], environ: Mapping[str, str]) -> ServeSettings:
    """Settings from flags, then environment, then defaults; raises SettingsError when invalid."""
    try:
        args = vars(build_parser().parse_args(list(argv)))
    except SystemExit as error:  # argparse exits on --help and on bad flags
        if error.code in (0, None):
            raise
        raise SettingsError("invalid command line (see the message above)") from error
    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for key, (flag, _) in FLAGS.items():
        raw = args[key.replace(".", "__")]
        source = flag
        if raw is None and env_name(flag) in environ:
            raw, source = environ[env_name(flag)], env_name(flag)
        if raw is None:
            continue
        try:
            value = _converter(_default(key))(raw)
        except ValueError as error:
            raise SettingsError(f"{source}: cannot read {raw!r}: {error}") from error
        section, name = key.split(".")
        values[section][name] = value
    config = ServeSettings(**{section: _SECTIONS[section](**fields) for section, fields in values.items()})
    validate(config)
    return config


def validate(config: ServeSettings) -> None:
    checks: list[tuple[bool, str]] = [
        (0 <= config.server.port <= 65535, f"--port must be 0..65535, got {config.server.port}"),
        (config.server.max_body_bytes >= 1024, "--max-body-bytes must be at least 1024"),
        (config.server.max_rows >= 1, "--max-rows must be at least 1"),
        (
            config.server.http in ("httptools", "uvicorn"),
            f"--http must be httptools or uvicorn, not {config.server.http!r}",
        ),
        (config.server.drain_delay_s >= 0, "--drain-delay must be >= 0"),
        (config.server.drain_timeout_s >= 0, "--drain-timeout must be >= 0"),
        (config.server.keep_alive_s > 0, "--keep-alive-timeout must be > 0"),
        (config.batching.max_batch_size >= 1, "--max-batch-size must be at least 1"),
        (config.batching.max_delay_ms >= 0, "--max-batch-delay-ms must be >= 0"),
        (config.runtime.intra_op_threads >= 0, "--intra-op-threads must be >= 0"),
        (config.runtime.inter_op_threads >= 1, "--inter-op-threads must be at least 1"),
        (config.runtime.warmup_rows >= 1, "--warmup-rows must be at least 1"),
        (config.routing.poll_interval_s > 0, "--routing-poll-interval must be > 0"),
        (config.monitor.queue_rows >= 1, "--monitor-queue-rows must be at least 1"),
        (config.monitor.batch_rows >= 1, "--monitor-batch-rows must be at least 1"),
        (config.monitor.flush_interval_s > 0, "--monitor-flush-interval must be > 0"),
        (config.monitor.timeout_s > 0, "--monitor-timeout must be > 0"),
        (config.explain.top_k >= 1, "--explain-top-k must be at least 1"),
        (
            "://" not in config.server.store or config.server.store.startswith(("s3://", "file://")),
            f"--store must be a directory, file:// or s3://bucket/prefix, got {config.server.store!r}",
        ),
        (
            config.monitor.url == "" or config.monitor.url.startswith("http://"),
            f"--monitor-url must be an http:// URL, got {config.monitor.url!r}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise SettingsError(message)
