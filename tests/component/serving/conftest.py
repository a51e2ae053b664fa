"""Fixtures for the server's component tests: artifacts made by the real trainer, real server processes.

The artifacts come from ``mlsteward train`` run as subprocesses (once per session, in parallel):
``v1`` a LogisticRegression and ``v2`` a small RandomForest on the credit data (mixed numeric and
categorical features), and ``reg`` a GradientBoostingRegressor on numeric features only. Each
server is a real ``mlsteward serve`` process on 127.0.0.1 on a free port, stopped with SIGTERM
at the end of its test; its log is printed when a test fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from mlsteward.training import datasets

MLSTEWARD = pathlib.Path(sys.executable).parent / "mlsteward"
CREDIT_FEATURES = list(datasets.EXAMPLE_FEATURES)
REGRESSION_FEATURES = ["income", "debt_ratio", "term_months", "employment_years", "credit_history_years"]


@dataclasses.dataclass(frozen=True)
class Store:
    """A store holding the session's trained artifacts: name -> digest."""

    root: pathlib.Path
    digests: dict[str, str]

    def artifact(self, name: str) -> pathlib.Path:
        return self.root / "artifacts" / "sha256" / self.digests[name]


def _spec(uri: str, task: str, target: str, features: list[str], estimator: dict[str, Any]) -> dict[str, Any]:
    categorical = [f for f in features if f in datasets.CATEGORICAL]
    return {
        "task": task,
        "dataset": {
            "uri": uri,
            "target": target,
            "features": features,
            "categorical": categorical,
            "sensitive": list(datasets.SENSITIVE),
        },
        "estimator": {**estimator, "seed": 7},
        "fairnessGates": {"minGroupSize": 30},
        "card": {"intendedUse": "Serving tests.", "owners": ["serving"], "limitations": ["Synthetic data."]},
    }


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Three artifacts trained by ``mlsteward train`` into one store."""
    base = tmp_path_factory.mktemp("serving-store")
    data = base / "credit.parquet"
    datasets.write(datasets.generate(3000, seed=5), data)
    uri = data.resolve().as_uri()
    specs = {
        "v1": _spec(
            uri,
            "classification",
            "default",
            CREDIT_FEATURES,
            {"className": "LogisticRegression", "params": {"max_iter": 500}},
        ),
        "v2": _spec(
            uri,
            "classification",
            "default",
            CREDIT_FEATURES,
            {"className": "RandomForestClassifier", "params": {"n_estimators": 15, "max_depth": 5}},
        ),
        "reg": _spec(
            uri,
            "regression",
            "loan_amount",
            REGRESSION_FEATURES,
            {"className": "GradientBoostingRegressor", "params": {"n_estimators": 20}},
        ),
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLSTEWARD_")}
    processes = {}
    for name, spec in specs.items():
        path = base / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        processes[name] = subprocess.Popen(
            [str(MLSTEWARD), "train", "--spec", str(path), "--store", str(base / "store")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
    digests = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=240)
        outcome = json.loads(stdout.strip().splitlines()[-1])
        assert outcome["artifact"] is not None, f"training {name} failed: {outcome} {stderr[-2000:]}"
        digests[name] = outcome["artifact"]["digest"]
    return Store(base / "store", digests)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def routing_document(
    champion: tuple[str, str],
    challenger: tuple[str, str] | None = None,
    share: float = 0,
    mode: str = "split",
    model: str = "credit",
) -> dict[str, Any]:
    document: dict[str, Any] = {"model": model, "champion": {"version": champion[0], "digest": champion[1]}}
    document["challenger"] = (
        {"version": challenger[0], "digest": challenger[1], "share": share, "mode": mode}
        if challenger
        else None
    )
    return document


def write_configmap(folder: pathlib.Path, document: dict[str, Any]) -> pathlib.Path:
    """Write the routing file the way the kubelet updates a ConfigMap mount: new dir, swap ``..data``.

    Returns the path a server reads: ``folder/routing.json`` -> ``..data/routing.json``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / f"..{time.time_ns()}"
    stamp.mkdir()
    (stamp / "routing.json").write_text(json.dumps(document))
    temporary = folder / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(stamp.name)
    os.replace(temporary, folder / "..data")  # atomic, like the kubelet's rename
    link = folder / "routing.json"
    if not link.is_symlink():
        link.symlink_to("..data/routing.json")
    return link


class Server:
    """One ``mlsteward serve`` process."""

    def __init__(
        self,
        routing: pathlib.Path,
        store: pathlib.Path,
        log: pathlib.Path,
        args: list[str],
        port: int | None = None,
    ) -> None:
        self.routing = routing
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = log.open("w")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MLSTEWARD_")}
        self.process = subprocess.Popen(
            [
                str(MLSTEWARD),
                "serve",
                "--routing",
                str(routing),
                "--store",
                str(store),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--routing-poll-interval",
                "0.1",
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited early:\n{self.log()}"
            with contextlib.suppress(httpx.TransportError):
                if self.client.get("/v2/health/live").status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"server not listening after {timeout} s:\n{self.log()}")

    def wait_ready(self, timeout: float = 30) -> None:
        self.wait_listening(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.client.get("/v2/health/ready").status_code == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.log()}")

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics (0.0 when absent)."""
        text = self.client.get("/metrics").text
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            sample, _, label_text = head.partition("{")
            if sample != name:
                continue
            found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part)
            if all(found.get(k, "").strip('"') == v for k, v in labels.items()):
                return float(value)
        return 0.0

    def stop(self, timeout: float = 20) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


class Launcher:
    """Starts servers in one folder and stops them all at the end (printing logs when a test failed)."""

    def __init__(self, folder: pathlib.Path, store: Store) -> None:
        self.folder = folder
        self.store = store
        self.servers: list[Server] = []

    def __call__(
        self,
        document: dict[str, Any] | None,
        *args: str,
        ready: bool = True,
        configmap: bool = False,
        store_root: pathlib.Path | None = None,
        port: int | None = None,
    ) -> Server:
        folder = self.folder / f"routing-{len(self.servers)}"
        if configmap:
            path = write_configmap(folder, document or {})
        else:
            folder.mkdir(parents=True)
            path = folder / "routing.json"
            if document is not None:
                path.write_text(json.dumps(document))
        log = self.folder / f"server-{len(self.servers)}.log"
        server = Server(path, store_root or self.store.root, log, list(args), port)
        self.servers.append(server)
        if ready:
            server.wait_ready()
        else:
            server.wait_listening()
        return server

    def stop_all(self, failed: bool) -> None:
        for server in self.servers:
            server.stop()
            if failed:
                print(f"--- log of server on port {server.port} ---\n{server.log()[-6000:]}")


@pytest.fixture
def start_server(tmp_path: pathlib.Path, store: Store, request: pytest.FixtureRequest) -> Iterator[Launcher]:
    """A factory: ``start_server(routing_document, *flags, ready=True) -> Server``; all stopped at the end."""
    launcher = Launcher(tmp_path, store)
    yield launcher
    report = getattr(request.node, "rep_call", None)
    launcher.stop_all(report is not None and report.failed)


@pytest.fixture(scope="module")
def module_launcher(tmp_path_factory: pytest.TempPathFactory, store: Store) -> Iterator[Launcher]:
    """Like start_server, for servers shared by a module's tests (logs printed at the end)."""
    launcher = Launcher(tmp_path_factory.mktemp("servers"), store)
    yield launcher
    launcher.stop_all(failed=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
