"""Fixtures for the operator's cluster tests: the operator as a real process under its own
ServiceAccount token and RBAC (deploy/rbac.yaml), a bound artifact-store claim, and a kit of
bounded-wait helpers, including the test's stand-in kubelet for training pods.

KWOK completes a Job's pod at once with no termination message. Training pods here mount a
claim that binds only when a test asks for it, so they stay Pending until the test plays
kubelet: it writes the pod's terminated state (with the trainer's outcome, or none) into the
pod's status, exactly where a kubelet would put it.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from mlsteward.dev import controlplane
from mlsteward.operator import rbac

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
GROUP = "mlsteward.io"
KINDS = {
    "Model": "models.mlsteward.io",
    "Deployment": "deployments.mlsteward.io",
    "Monitor": "monitors.mlsteward.io",
}
Json = dict[str, Any]


def token_kubeconfig(cp: controlplane.ControlPlane, service_account: str, path: pathlib.Path) -> pathlib.Path:
    """A kubeconfig that authenticates as ``mlsteward-system/<service_account>`` with a bound token."""
    token = cp.kubectl(
        "create", "token", service_account, "-n", rbac.NAMESPACE, "--duration=4h"
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": cp.server,
                    "certificate-authority": str(cp.directory / "pki" / "ca.crt"),
                },
            }
        ],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": service_account}}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def operator_kubeconfig(
    control_plane: controlplane.ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> pathlib.Path:
    """deploy/rbac.yaml applied as committed, and a kubeconfig with the ServiceAccount's token."""
    control_plane.kubectl(
        "apply",
        "--server-side",
        "--field-manager=mlsteward-tests",
        "-f",
        str(REPO_ROOT / "deploy" / "rbac.yaml"),
    )
    return token_kubeconfig(control_plane, rbac.NAME, tmp_path_factory.mktemp("operator-sa") / "kubeconfig")


class OperatorProcess:
    """``mlsteward operator`` as a child process with its own log file."""

    def __init__(self, kubeconfig: pathlib.Path, log: pathlib.Path, args: list[str]) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        env.pop("KUBERNETES_SERVICE_HOST", None)
        with self.log.open("ab") as handle:
            handle.write(f"\n===== start {self.starts} =====\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mlsteward", "operator", *self.args],
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last write."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def start_operator(
    control_plane: controlplane.ControlPlane,
    namespace: str,
    operator_kubeconfig: pathlib.Path,
    tmp_path: pathlib.Path,
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operators watching the test's namespace; stop them (and print their logs) after."""
    started: list[OperatorProcess] = []

    def start(*extra: str, kubeconfig: pathlib.Path | None = None) -> OperatorProcess:
        args = [
            "--namespaces",
            namespace,
            "--log-level",
            "INFO",
            "--training-poll-seconds",
            "5",
            "--resync-seconds",
            "20",
            "--watch-timeout-seconds",
            "30",
            *extra,
        ]
        process = OperatorProcess(
            kubeconfig or operator_kubeconfig, tmp_path / f"operator-{len(started)}.log", args
        )
        process.start()
        started.append(process)
        return process

    yield start
    # Monitors carry a finalizer (their sidecar lives in another object): let a running
    # operator release them before it stops, so the namespace can go.
    if any(p.alive() for p in started):
        control_plane.kubectl(
            "delete", "monitors.mlsteward.io", "--all", "-n", namespace, "--timeout=60s", check=False
        )
    for process in started:
        process.stop()
        print(f"\n----- operator log {process.log} -----\n{process.logs()[-20000:]}")


class Kit:
    """Bounded-wait helpers over kubectl for one namespace."""

    def __init__(self, cp: controlplane.ControlPlane, namespace: str) -> None:
        self.cp = cp
        self.namespace = namespace

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True) -> str:
        """kubectl in this namespace; its stdout."""
        return self.cp.kubectl(*args, "-n", self.namespace, input_text=input_text, check=check).stdout

    def apply(self, manifest: Json | str | pathlib.Path) -> None:
        if isinstance(manifest, pathlib.Path):
            self.kubectl("apply", "-f", str(manifest))
        else:
            text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
            self.kubectl("apply", "-f", "-", input_text=text)

    def get(self, resource: str, name: str) -> Json | None:
        out = self.cp.kubectl("get", resource, name, "-n", self.namespace, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def items(self, resource: str, selector: str | None = None) -> list[Json]:
        args = ["get", resource, "-o", "json"] + (["-l", selector] if selector else [])
        result: list[Json] = json.loads(self.kubectl(*args))["items"]
        return result

    def wait_for(self, what: str, predicate: Callable[[], Any], timeout: float = 90) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.5)

    def model_status(self, name: str) -> Json:
        body = self.get(KINDS["Model"], name) or {}
        status: Json = body.get("status") or {}
        return status

    def training_pod(self, job: str) -> Json | None:
        pods = self.items("pods", f"batch.kubernetes.io/job-name={job}")
        return pods[0] if pods else None

    def finish_training(self, job: str, outcome: Json | None, exit_code: int = 0) -> None:
        """Play kubelet: the training pod of ``job`` terminates with ``outcome`` as its message."""
        pod = self.wait_for(f"the pod of Job {job}", lambda: self.training_pod(job))
        terminated: Json = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": "2026-01-01T00:00:00Z",
            "finishedAt": "2026-01-01T00:00:01Z",
        }
        if outcome is not None:
            terminated["message"] = json.dumps(outcome)
        patch = {
            "status": {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": "train",
                        "image": "mlsteward:0.1.0",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "started": False,
                        "state": {"terminated": terminated},
                    }
                ],
            }
        }
        self.kubectl(
            "patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge",
            "-p", json.dumps(patch),
        )  # fmt: skip

    def revive_fake_pods(self) -> None:
        """Undo a local-cluster artifact: when KWOK's node heartbeats lag on a loaded machine, the
        node controller marks pods NotReady, and KWOK never marks them Ready again. A pod whose
        containers are all ready is Ready."""
        for pod in self.items("pods"):
            conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
            if conditions.get("ContainersReady") == "True" and conditions.get("Ready") == "False":
                patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
                self.kubectl(
                    "patch", "pod", pod["metadata"]["name"], "--subresource=status", "-p", json.dumps(patch),
                    check=False,
                )  # fmt: skip

    def wait_ready(self, resource: str, name: str, timeout: float = 150) -> None:
        """Wait for the Ready condition of the current generation, then show that
        ``kubectl wait --for=condition=Ready`` agrees."""

        def ready() -> bool:
            self.revive_fake_pods()
            body = self.get(resource, name) or {}
            generation = body.get("metadata", {}).get("generation")
            return any(
                c["type"] == "Ready" and c["status"] == "True" and c.get("observedGeneration") == generation
                for c in (body.get("status") or {}).get("conditions", [])
            )

        try:
            self.wait_for(f"{resource}/{name} to be Ready", ready, timeout)
        except AssertionError as error:
            status = (self.get(resource, name) or {}).get("status")
            pods = [
                (p["metadata"]["name"], p.get("status", {}).get("conditions")) for p in self.items("pods")
            ]
            raise AssertionError(f"{error}; status: {json.dumps(status)}; pods: {pods}") from None
        self.kubectl("wait", f"{resource}/{name}", "--for=condition=Ready", "--timeout=30s")

    def events(self, name: str) -> list[Json]:
        return [e for e in self.items("events") if e["involvedObject"].get("name") == name]

    def restart_api_server(self) -> None:
        """Stop kube-apiserver and start it again with the same command line (same port)."""
        pid_file = self.cp.directory / "pids" / "kube-apiserver.pid"
        pid = int(pid_file.read_text())
        command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and pathlib.Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        log = self.cp.log("kube-apiserver").open("ab")
        process = subprocess.Popen(
            [c.decode() for c in command],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.cp.directory,
        )
        pid_file.write_text(str(process.pid))
        self.wait_for(
            "the restarted API server",
            lambda: self.cp.kubectl("get", "--raw=/readyz", check=False).returncode == 0,
            timeout=120,
        )


@pytest.fixture
def kit(control_plane: controlplane.ControlPlane, namespace: str) -> Kit:
    return Kit(control_plane, namespace)


@pytest.fixture
def bound_store(
    control_plane: controlplane.ControlPlane, namespace: str, tmp_path: pathlib.Path
) -> Iterator[str]:
    """A PersistentVolume bound to the claim ``mlsteward-artifacts`` in the test's namespace."""
    name = f"store-{namespace}"
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "hostPath": {"path": str(tmp_path / "store")},
                "storageClassName": "",
                "claimRef": {"namespace": namespace, "name": "mlsteward-artifacts"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "mlsteward-artifacts", "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": name,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]
    control_plane.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(manifests))
    yield "mlsteward-artifacts"
    control_plane.kubectl("delete", "pv", name, "--wait=false", check=False)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def monitor_summary(drifting: bool) -> Json:
    """A drift monitor's /summary document (contracts), drifting on ``income`` or not."""
    return {
        "schema": "mlsteward.io/monitor-summary/v1",
        "time": 1.0,
        "window": {"currentPaneRows": 10, "minSamples": 100},
        "evaluation": {
            "number": 3,
            "rows": 5000,
            "state": "drift" if drifting else "ok",
            "consecutiveBreaches": 2 if drifting else 0,
            "drifting": drifting,
            "driftingFeatures": 1 if drifting else 0,
            "features": [
                {"name": "income", "test": "wasserstein", "score": 0.42 if drifting else 0.01,
                 "threshold": 0.1, "state": "drift" if drifting else "ok", "drifting": drifting},
                {"name": "purpose", "test": "jensen_shannon", "score": 0.02, "threshold": 0.1, "state": "ok",
                 "drifting": False},
            ],
        },
        "performance": None,
        "fairness": [],
    }  # fmt: skip


class PodEndpoint:
    """A stand-in serving pod: /metrics counters that grow at fixed rates, /summary on demand."""

    def __init__(self, address: str, port: int) -> None:
        self.started = time.monotonic()
        self.rates: Json = {"stable": 50.0, "canary": 50.0, "canary5xx": 0.0, "agree": 50.0, "disagree": 0.0}
        self.summary: Json = monitor_summary(False)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, kind = owner.metrics().encode(), "text/plain; version=0.0.4"
                elif self.path == "/summary":
                    body, kind = json.dumps(owner.summary).encode(), "application/json"
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((address, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set(self, **rates: float) -> None:
        """New rates from now on (counters never go back, like a running server's)."""
        self.totals = self._totals()
        self.started = time.monotonic()
        self.rates = {**self.rates, **rates}

    def _totals(self) -> Json:
        elapsed = time.monotonic() - self.started
        base = getattr(self, "totals", {})
        return {k: base.get(k, 0.0) + rate * elapsed for k, rate in self.rates.items()}

    def metrics(self) -> str:
        t = self._totals()
        line = 'mlsteward_serving_requests_total{{code="{code}",model="credit",version="{v}"}} {n}'
        return "\n".join(
            [
                "# TYPE mlsteward_serving_requests_total counter",
                line.format(code=200, v=1, n=t["stable"]),
                *(line.format(code=200, v=v, n=t["canary"]) for v in range(2, 6)),
                *(line.format(code=500, v=v, n=t["canary5xx"]) for v in range(2, 6)),
                "# TYPE mlsteward_serving_shadow_rows_total counter",
                f'mlsteward_serving_shadow_rows_total{{outcome="agree"}} {t["agree"]}',
                f'mlsteward_serving_shadow_rows_total{{outcome="disagree"}} {t["disagree"]}',
                "",
            ]
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pod_endpoint() -> Iterator[Callable[[str, int], PodEndpoint]]:
    started: list[PodEndpoint] = []

    def start(address: str, port: int) -> PodEndpoint:
        started.append(PodEndpoint(address, port))
        return started[-1]

    yield start
    for endpoint in started:
        with contextlib.suppress(OSError):
            endpoint.close()
