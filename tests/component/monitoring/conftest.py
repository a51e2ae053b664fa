"""Fixtures for the monitor's component tests: real artifacts, real processes, real Prometheus.

The reference artifact is written with ``write_artifact`` from a profile built by
``mlsteward.monitoring.profiling`` (the §2 format), the monitor runs as ``mlsteward monitor``
on a free port of 127.0.0.1, and Prometheus is Debian's ``/usr/bin/prometheus`` started with
a temporary configuration and storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from mlsteward.monitoring import profiling
from mlsteward.store import artifacts

REPO = pathlib.Path(__file__).resolve().parents[3]
MLSTEWARD = pathlib.Path(sys.executable).parent / "mlsteward"
PROMETHEUS = pathlib.Path("/usr/bin/prometheus")
PURPOSES = ["car", "home", "education", "business"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def columns(rng: np.random.Generator, n: int, *, shifted: bool = False) -> dict[str, Any]:
    """Two numerics and one categorical; ``shifted`` moves income and purpose, not age."""
    income = rng.normal(50.0, 10.0, n) + (8.0 if shifted else 0.0)
    weights = [0.1, 0.2, 0.3, 0.4] if shifted else [0.4, 0.3, 0.2, 0.1]
    return {
        "age": rng.normal(40.0, 10.0, n),
        "income": income,
        "purpose": rng.choice(PURPOSES, n, p=weights).tolist(),
    }


def rows_body(data: dict[str, Any], start: int, stop: int, rng: np.random.Generator) -> dict[str, Any]:
    """A ``POST /v1/rows`` body per docs/contracts.md §4."""
    n = stop - start
    score = rng.beta(2.0, 5.0, n)
    return {
        "model_version": "3",
        "route": "champion",
        "time": time.time(),
        "request_ids": [f"req-{i}" for i in range(start, stop)],
        "features": {
            "age": data["age"][start:stop].tolist(),
            "income": data["income"][start:stop].tolist(),
            "purpose": data["purpose"][start:stop],
        },
        "prediction": {"label": ["1" if s >= 0.5 else "0" for s in score], "score": score.tolist()},
        "metadata": {"sex": rng.choice(["F", "M"], n).tolist()},
    }


@dataclasses.dataclass(frozen=True)
class Artifact:
    path: pathlib.Path
    digest: str


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    rng = np.random.default_rng(11)
    data = columns(rng, 20_000)
    score = rng.beta(2.0, 5.0, 20_000)
    profile = profiling.profile(
        data, prediction_label=["1" if s >= 0.5 else "0" for s in score], prediction_score=score
    )
    schema = {
        "task": "classification",
        "target": "default",
        "features": [
            {"name": "age", "kind": "numeric"},
            {"name": "income", "kind": "numeric"},
            {"name": "purpose", "kind": "categorical"},
        ],
        "classes": ["0", "1"],
        "positive_class": "1",
        "sensitive": ["sex"],
    }
    store = tmp_path_factory.mktemp("store")
    ref = artifacts.write_artifact(
        store,
        {"profile.json": artifacts.canonical_json(profile), "schema.json": artifacts.canonical_json(schema)},
    )
    assert ref.path is not None  # a local store
    return Artifact(ref.path, ref.digest)


@dataclasses.dataclass
class Monitor:
    """A running ``mlsteward monitor``."""

    url: str
    process: subprocess.Popen[bytes]
    log: pathlib.Path

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, content=orjson.dumps(body), timeout=10.0, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10.0)


def start_monitor(
    artifact: Artifact, config: dict[str, Any], work: pathlib.Path, extra: list[str] | None = None
) -> Monitor:
    port = free_port()
    config_path = work / f"monitor-{port}.json"
    config_path.write_bytes(orjson.dumps(config))
    log = work / f"monitor-{port}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLSTEWARD_")}
    command = [
        str(MLSTEWARD), "monitor", "--profile-artifact", str(artifact.path), "--digest", artifact.digest,
        "--host", "127.0.0.1", "--port", str(port), "--config", str(config_path), "--tick-seconds", "0.2",
        *(extra or []),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment, cwd=REPO)
    monitor = Monitor(f"http://127.0.0.1:{port}", process, log)
    wait_until(lambda: _healthy(monitor), 30.0, f"the monitor did not start:\n{log.read_text()[-3000:]}")
    return monitor


def _healthy(monitor: Monitor) -> bool:
    if monitor.process.poll() is not None:
        raise AssertionError(
            f"the monitor exited with {monitor.process.returncode}: {monitor.log.read_text()}"
        )
    try:
        return monitor.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(message)


MonitorFactory = Callable[..., Monitor]


@pytest.fixture
def monitor_factory(artifact: Artifact, tmp_path: pathlib.Path) -> Iterator[MonitorFactory]:
    started: list[Monitor] = []

    def start(
        config: dict[str, Any] | None = None,
        extra: list[str] | None = None,
        artifact_override: tuple[pathlib.Path, str] | None = None,
    ) -> Monitor:
        default = {
            "window": {"kind": "tumbling", "size": 2000, "minSamples": 1000},
            "drift": {"consecutiveWindows": 1},
        }
        chosen = artifact if artifact_override is None else Artifact(*artifact_override)
        monitor = start_monitor(chosen, config or default, tmp_path, extra)
        started.append(monitor)
        return monitor

    yield start
    for monitor in started:
        stop(monitor.process)


@dataclasses.dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: pathlib.Path

    def query(self, expression: str) -> list[dict[str, Any]]:
        response = httpx.get(self.url + "/api/v1/query", params={"query": expression}, timeout=10.0)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


@contextlib.contextmanager
def run_prometheus(targets: list[str], work: pathlib.Path) -> Iterator[Prometheus]:
    if not PROMETHEUS.exists():
        raise AssertionError("Debian's prometheus package is missing: run `make system-deps`")
    port = free_port()
    config = work / "prometheus.yml"
    hosts = ", ".join(f"'{t}'" for t in targets)
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: monitor\n    static_configs:\n      - targets: [{hosts}]\n"
    )
    log = work / "prometheus.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited: {log.read_text()[-3000:]}")
            try:
                return httpx.get(prometheus.url + "/-/ready", timeout=2.0).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 30.0, f"prometheus did not become ready:\n{log.read_text()[-3000:]}")
        yield prometheus
    finally:
        stop(process)


ColumnsMaker = Callable[..., dict[str, Any]]
BodyMaker = Callable[[dict[str, Any], int, int, np.random.Generator], dict[str, Any]]
PrometheusRunner = Callable[[list[str], pathlib.Path], contextlib.AbstractContextManager[Prometheus]]


@pytest.fixture
def make_columns() -> ColumnsMaker:
    return columns


@pytest.fixture
def make_body() -> BodyMaker:
    return rows_body


@pytest.fixture
def prometheus_runner() -> PrometheusRunner:
    return run_prometheus
