"""A whole local mlsteward stack for the demo and the end-to-end tests.

The real control plane with a local node agent (pods really run, on loopback pod IPs); the
operator either installed by the Helm chart (CRDs, RBAC, admission policies, the operator pod
run by the agent, logged in with its ServiceAccount token) or as a process with the CRDs and
the least-privilege RBAC in ``deploy/rbac.yaml``; namespaces enforcing Pod Security
``restricted`` with the artifact-store claim bound to a host directory; and an HTTP server on
127.0.0.1 for datasets. Development and tests only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import yaml

from mlsteward.dev import controlplane, toolchain
from mlsteward.dev.agent import launcher

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "mlsteward-system"
OPERATOR_ACCOUNT = "mlsteward-operator"
OPERATOR_SELECTOR = "app.kubernetes.io/name=mlsteward-operator"
STORE_CLAIM = "mlsteward-artifacts"
CHART = REPO_ROOT / "charts" / "mlsteward"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the base class's name
        return None


class DataServer:
    """Serves one directory over HTTP on 127.0.0.1, in a thread."""

    def __init__(self, directory: pathlib.Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def operator_kubeconfig(cp: controlplane.ControlPlane, path: pathlib.Path) -> pathlib.Path:
    """Apply the operator's RBAC and write a kubeconfig holding its ServiceAccount's bound token."""
    cp.kubectl(
        "apply",
        "--server-side",
        "--field-manager=mlsteward-dev",
        "-f",
        str(REPO_ROOT / "deploy" / "rbac.yaml"),
    )
    token = cp.kubectl(
        "create", "token", OPERATOR_ACCOUNT, "-n", OPERATOR_NAMESPACE, "--duration=12h"
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
        "users": [{"name": OPERATOR_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": OPERATOR_ACCOUNT}}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def create_namespace(cp: controlplane.ControlPlane, namespace: str, store_dir: pathlib.Path) -> None:
    """A restricted namespace whose artifact-store claim is bound to ``store_dir``."""
    volume = f"store-{namespace}"
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteMany"],
                "hostPath": {"path": str(store_dir)},
                "storageClassName": "",
                "claimRef": {"namespace": namespace, "name": STORE_CLAIM},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": STORE_CLAIM, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "10Gi"}},
            },
        },
    ]
    cp.kubectl(
        "apply",
        "--server-side",
        "--field-manager=mlsteward-dev",
        "-f",
        "-",
        input_text=yaml.safe_dump_all(manifests),
    )


@dataclasses.dataclass
class Stack:
    """Everything ``start`` started; ``stop`` ends all of it."""

    directory: pathlib.Path
    cp: controlplane.ControlPlane
    agent: launcher.AgentHandle
    operator: subprocess.Popen[bytes] | None
    """The operator process; None when the chart installed it as a pod run by the agent."""
    data: DataServer

    @property
    def operator_log(self) -> pathlib.Path:
        if self.operator is not None:
            return self.directory / "operator.log"
        # The agent's log of the operator pod's container (the newest pod's, after a restart).
        logs = sorted(
            self.agent.state_dir.glob(f"logs/{OPERATOR_NAMESPACE}_{OPERATOR_ACCOUNT}-*_operator.log"),
            key=lambda path: path.stat().st_mtime,
        )
        return logs[-1] if logs else self.directory / "operator.log"

    def restart_operator(self) -> None:
        if self.operator is None:
            self.cp.kubectl(
                "delete", "pods", "-n", OPERATOR_NAMESPACE, "-l", OPERATOR_SELECTOR, "--wait=false"
            )
            self.cp.kubectl("rollout", "status", "deployment/" + OPERATOR_ACCOUNT, "-n", OPERATOR_NAMESPACE,
                            "--timeout=120s")  # fmt: skip
            return
        self._stop_operator()
        self.operator = _start_operator(self.directory, self.cp)

    def _stop_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.send_signal(signal.SIGTERM)
            try:
                self.operator.wait(15)
            except subprocess.TimeoutExpired:
                self.operator.kill()
                self.operator.wait(5)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._stop_operator()
        with contextlib.suppress(Exception):
            self.agent.stop()
        with contextlib.suppress(Exception):
            self.data.stop()
        controlplane.down(self.cp.directory)


def _start_operator(directory: pathlib.Path, cp: controlplane.ControlPlane) -> subprocess.Popen[bytes]:
    kubeconfig = operator_kubeconfig(cp, directory / "operator.kubeconfig")
    with (directory / "operator.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "mlsteward", "operator", "--log-level=INFO"],
            env=dict(os.environ, KUBECONFIG=str(kubeconfig), PYTHONUNBUFFERED="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def install_chart(cp: controlplane.ControlPlane, directory: pathlib.Path, timeout_s: int = 180) -> None:
    """``helm upgrade --install`` charts/mlsteward: CRDs, RBAC, admission policies and the operator,
    whose pod the local node agent runs; returns once the operator pod is Ready.

    Two development-only values: the operator pod is pinned to the agent's nodes, and its
    liveness endpoint binds the pod IP (``$(POD_IP)``, which the agent expands) instead of
    0.0.0.0, so that it does not take port 8081 on every loopback address of the machine.
    """
    helm_home = directory / "helm"
    env = dict(
        os.environ,
        KUBECONFIG=str(cp.kubeconfig),
        HELM_CACHE_HOME=str(helm_home / "cache"),
        HELM_CONFIG_HOME=str(helm_home / "config"),
        HELM_DATA_HOME=str(helm_home / "data"),
    )
    extra_args = ["--liveness-endpoint=http://$(POD_IP):8081/healthz"]
    command = [
        str(cp.toolchain.binary("helm")), "upgrade", "--install", "mlsteward", str(CHART),
        "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
        "--set", "operator.nodeSelector.type=mlsteward-agent",
        "--set-json", f"operator.extraArgs={json.dumps(extra_args)}",
        "--wait", "--timeout", f"{timeout_s}s",
    ]  # fmt: skip
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout_s + 30, check=False
    )
    if result.returncode != 0:
        raise controlplane.ControlPlaneError(f"helm install of the chart failed: {result.stderr.strip()}")


def start(
    directory: pathlib.Path, *, tools: toolchain.Toolchain | None = None, operator_from_chart: bool = False
) -> Stack:
    """Start the control plane (agent nodes only), the agent, a data server and the operator:
    as a process with the CRDs and ``deploy/rbac.yaml`` applied, or with ``operator_from_chart``
    installed by the Helm chart and run as a pod by the agent."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    cp = controlplane.up(directory / "control-plane", fake_nodes=0, tools=tools or toolchain.build())
    try:
        if not operator_from_chart:
            cp.kubectl(
                "apply", "--server-side", "--field-manager=mlsteward-dev", "-f", str(REPO_ROOT / "crds")
            )
            cp.kubectl(
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd",
                "-l",
                "app.kubernetes.io/part-of=mlsteward",
            )
        agent = launcher.start_agent(cp, directory / "agent", nodes=1)
    except BaseException:
        controlplane.down(cp.directory)
        raise
    if operator_from_chart:
        try:
            install_chart(cp, directory)
        except BaseException:
            agent.stop()
            controlplane.down(cp.directory)
            raise
        operator = None
    else:
        operator = _start_operator(directory, cp)
    return Stack(
        directory=directory, cp=cp, agent=agent, operator=operator, data=DataServer(directory / "data")
    )


def wait_for(
    what: str, predicate: Callable[[], object], timeout_s: float, stack: Stack | None = None
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail with the operator log's tail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    tail = stack.operator_log.read_text(errors="replace")[-4000:] if stack else ""
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{tail}")
