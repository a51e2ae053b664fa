"""Fixtures for the decision-log component tests: a model trained by ``mlsteward train``, real
``mlsteward serve`` and ``mlsteward monitor`` processes on 127.0.0.1, and a real MinIO for S3.

The server and the monitor are started with the helpers of the serving and monitoring
component tests; MinIO with the store tests' session fixture (the tests fail, never skip,
when it cannot be built or started).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import yaml

from mlsteward.training import datasets
from tests.component.monitoring.conftest import Artifact, Monitor, stop, wait_until
from tests.component.serving.conftest import Server, free_port, routing_document, write_configmap
from tests.component.store.conftest import bucket, minio_server, s3_settings

__all__ = ["bucket", "minio_server", "s3_settings"]  # the store tests' MinIO fixtures, shared here

MLSTEWARD = pathlib.Path(sys.executable).parent / "mlsteward"


@dataclasses.dataclass(frozen=True)
class Trained:
    store: pathlib.Path
    digest: str

    @property
    def artifact(self) -> Artifact:
        return Artifact(self.store / "artifacts" / "sha256" / self.digest, self.digest)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A LogisticRegression on the credit data, trained by the real trainer."""
    work = tmp_path_factory.mktemp("audit-model")
    data = work / "credit.parquet"
    datasets.write(datasets.generate(2_000, seed=4), data)
    spec = datasets.example_spec(str(data), estimator={"params": {"max_iter": 300}})
    (work / "spec.yaml").write_text(yaml.safe_dump(spec))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLSTEWARD_")}
    result = subprocess.run(
        [str(MLSTEWARD), "train", "--spec", str(work / "spec.yaml"), "--store", str(work / "store")],
        capture_output=True, text=True, check=False, timeout=300, env=environment,
    )  # fmt: skip
    outcome = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["artifact"] is not None, result.stderr[-3000:]
    return Trained(work / "store", outcome["artifact"]["digest"])


@dataclasses.dataclass
class Pair:
    """A server and its monitor sidecar with a decision log, and how to restart the sidecar."""

    server: Server
    monitor: Monitor
    monitor_port: int
    start_monitor: Callable[[], Monitor]

    def sigkill_monitor(self) -> None:
        self.monitor.process.send_signal(signal.SIGKILL)
        self.monitor.process.wait(10)


PairFactory = Callable[..., Pair]


def monitor_metric(monitor: Monitor, name: str) -> float:
    for line in monitor.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture
def pair_factory(trained: Trained, tmp_path: pathlib.Path) -> Iterator[PairFactory]:
    started: list[Any] = []

    def start(log_store: str, *log_flags: str, env: dict[str, str] | None = None) -> Pair:
        port = free_port()
        flags = [
            "--decision-log-store", log_store, "--decision-log-namespace", "risk",
            "--decision-log-deployment", "credit", "--decision-log-chain", "credit-7f9c-0",
        ]  # fmt: skip

        def launch() -> Monitor:
            monitor = _start_monitor(trained.artifact, port, tmp_path, [*flags, *log_flags], env or {})
            started.append(monitor.process)
            return monitor

        monitor = launch()
        routing = write_configmap(tmp_path / "routing", routing_document(("1", trained.digest)))
        server = Server(
            routing, trained.store, tmp_path / "server.log",
            ["--monitor-url", f"http://127.0.0.1:{port}", "--monitor-flush-interval", "0.05"],
        )  # fmt: skip
        started.append(server)
        server.wait_ready()
        return Pair(server, monitor, port, launch)

    yield start
    for thing in started:
        if isinstance(thing, Server):
            thing.stop()
        else:
            stop(thing)


def _start_monitor(
    artifact: Artifact, port: int, work: pathlib.Path, flags: list[str], env: dict[str, str]
) -> Monitor:
    log = work / f"monitor-{port}-{len(list(work.glob('monitor-*.log')))}.log"
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith("MLSTEWARD_")}, **env}
    command = [
        str(MLSTEWARD), "monitor", "--profile-artifact", str(artifact.path), "--digest", artifact.digest,
        "--host", "127.0.0.1", "--port", str(port), *flags,
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment)
    monitor = Monitor(f"http://127.0.0.1:{port}", process, log)

    def healthy() -> bool:
        assert process.poll() is None, f"the monitor exited with {process.returncode}: {log.read_text()}"
        try:
            return monitor.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, 30.0, f"the monitor did not start:\n{log.read_text()[-3000:]}")
    return monitor


def audit(store: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Run ``mlsteward audit decisions --format json``; (exit code, document)."""
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith("MLSTEWARD_")}, **(env or {})}
    result = subprocess.run(
        [
            str(MLSTEWARD), "audit", "decisions", "--store", store, "--namespace", "risk",
            "--deployment", "credit", "--from", "2020-01-01T00:00:00Z", "--to", "2100-01-01",
            "--format", "json",
            *args,
        ],
        capture_output=True, text=True, check=False, timeout=60, env=environment,
    )  # fmt: skip
    assert result.returncode in {0, 3}, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return result.returncode, document


def wait_written(monitor: Monitor, count: int) -> None:
    wait_until(
        lambda: monitor_metric(monitor, "mlsteward_audit_decisions_written_total") >= count,
        20.0,
        f"the decision log did not reach {count} decisions:\n{monitor.log.read_text()[-3000:]}",
    )


def infer(server: Server, rid: str, **overrides: Any) -> httpx.Response:
    from tests.component.serving.test_endpoints import per_feature

    body = per_feature(rows=1, id=rid, **overrides)
    response = server.client.post("/v2/models/credit/infer", json=body)
    assert response.status_code == 200, response.text
    return response
