"""Start and stop a real local control plane on 127.0.0.1.

etcd, kube-apiserver (x509 + service-account authentication, RBAC), kube-controller-manager
(garbage collector, Job, Deployment and ServiceAccount controllers), kube-scheduler and KWOK
(fake nodes whose pod IPs lie in 127.64.0.0/16) run as processes whose PIDs, ports and logs
live in one directory. ``up`` returns once the API server is ready, the default
ServiceAccount exists and the fake nodes are Ready; ``down`` stops what ``up`` started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

import yaml

from mlsteward.dev import certs, toolchain

FAKE_NODE_LABEL = "type"
FAKE_NODE_LABEL_VALUE = "kwok"
POD_CIDR = "127.64.0.0/16"
RESTRICTED_NAMESPACE = "mlsteward-system"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message names the component and its log."""


@dataclasses.dataclass(frozen=True)
class ControlPlane:
    """A running (or stopped) control plane described by its state directory."""

    directory: pathlib.Path
    toolchain: toolchain.Toolchain
    api_port: int

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.directory / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def log(self, component: str) -> pathlib.Path:
        return self.directory / "logs" / f"{component}.log"

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this control plane."""
        result = subprocess.run(
            [str(self.toolchain.binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def env(self) -> dict[str, str]:
        """Environment for tools talking to this control plane (kubectl, helm, the operator)."""
        path = os.pathsep.join(str(d) for d in (self.toolchain.kubernetes_dir, self.toolchain.helm_dir))
        return dict(os.environ, KUBECONFIG=str(self.kubeconfig), PATH=path + os.pathsep + os.environ["PATH"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _kubeconfig(server: str, ca: pathlib.Path, client: certs.KeyPair, user: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "mlsteward-local", "cluster": {"server": server, "certificate-authority": str(ca)}}
            ],
            "users": [
                {
                    "name": user,
                    "user": {"client-certificate": str(client.cert), "client-key": str(client.key)},
                }
            ],
            "contexts": [
                {"name": "mlsteward-local", "context": {"cluster": "mlsteward-local", "user": user}}
            ],
            "current-context": "mlsteward-local",
        }
    )


def _spawn(cp: ControlPlane, component: str, args: Sequence[str]) -> None:
    log = cp.log(component).open("ab")
    process = subprocess.Popen(
        list(args),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=cp.directory,
    )
    (cp.directory / "pids" / f"{component}.pid").write_text(str(process.pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it so we see it as gone.
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        return reaped == 0
    except ChildProcessError:
        return True


def _check_running(cp: ControlPlane, component: str) -> None:
    pid_file = cp.directory / "pids" / f"{component}.pid"
    pid = int(pid_file.read_text())
    if not _alive(pid):
        tail = cp.log(component).read_text(errors="replace")[-4000:]
        raise ControlPlaneError(
            f"{component} exited during start-up; the end of {cp.log(component)}:\n{tail}"
        )


def _wait(
    what: str,
    predicate: Callable[[], bool],
    deadline_s: float,
    cp: ControlPlane,
    components: Sequence[str],
) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for component in components:
            _check_running(cp, component)
        if predicate():
            return
        time.sleep(0.2)
    raise ControlPlaneError(
        f"timed out after {deadline_s:.0f} s waiting for {what}; logs in {cp.directory / 'logs'}"
    )


def _apiserver_ready(cp: ControlPlane, pki: pathlib.Path) -> bool:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    try:
        with urllib.request.urlopen(f"{cp.server}/readyz", context=context, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _fake_node(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                FAKE_NODE_LABEL: FAKE_NODE_LABEL_VALUE,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"providerID": f"kwok://{name}"},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        },
    }


def _restricted_namespace(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        },
    }


def up(
    directory: pathlib.Path,
    *,
    fake_nodes: int = 2,
    tools: toolchain.Toolchain | None = None,
    timeout_s: float = 90,
) -> ControlPlane:
    """Start a control plane whose state lives in ``directory``; return once it is usable."""
    tools = tools or toolchain.build()
    directory = directory.resolve()
    if (directory / "state.json").is_file():
        existing = load(directory)
        if existing is not None and status(existing):
            raise ControlPlaneError(
                f"a control plane is already running in {directory}; run `mlsteward dev down` first"
            )
        down(directory)
    for sub in ("pki", "logs", "pids", "etcd"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    pki = directory / "pki"
    now = datetime.datetime.now(datetime.UTC)
    ca, ca_key = certs.create_ca(pki, now)
    serving = certs.issue(pki, "apiserver", ca, ca_key, now, common_name="kube-apiserver", server=True)
    clients = {
        "admin": certs.issue(
            pki, "admin", ca, ca_key, now, common_name="mlsteward-admin", organizations=("system:masters",)
        ),
        "controller-manager": certs.issue(
            pki, "controller-manager", ca, ca_key, now, common_name="system:kube-controller-manager"
        ),
        "scheduler": certs.issue(pki, "scheduler", ca, ca_key, now, common_name="system:kube-scheduler"),
        # KWOK plays every fake node's kubelet; admin keeps this development stand-in simple.
        "kwok": certs.issue(
            pki, "kwok", ca, ca_key, now, common_name="kwok", organizations=("system:masters",)
        ),
    }
    service_accounts = certs.create_service_account_keys(pki)
    ports = {"etcd_client": free_port(), "etcd_peer": free_port(), "api": free_port()}
    cp = ControlPlane(directory=directory, toolchain=tools, api_port=ports["api"])
    (directory / "state.json").write_text(json.dumps({"ports": ports, "cache": str(tools.cache)}, indent=2))
    cp.kubeconfig.write_text(_kubeconfig(cp.server, ca.cert, clients["admin"], "mlsteward-admin"))
    for name in ("controller-manager", "scheduler", "kwok"):
        (directory / f"{name}.kubeconfig").write_text(_kubeconfig(cp.server, ca.cert, clients[name], name))

    started = time.monotonic()
    etcd_url = f"http://127.0.0.1:{ports['etcd_client']}"
    peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
    _spawn(
        cp,
        "etcd",
        [
            str(tools.binary("etcd")),
            "--name=mlsteward",
            f"--data-dir={directory / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=mlsteward={peer_url}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )
    _spawn(
        cp,
        "kube-apiserver",
        [
            str(tools.binary("kube-apiserver")),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['api']}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={ca.cert}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={service_accounts.cert}",
            f"--service-account-signing-key-file={service_accounts.key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--enable-priority-and-fairness=false",
        ],
    )
    _wait(
        "the API server's /readyz",
        lambda: _apiserver_ready(cp, pki),
        timeout_s,
        cp,
        ("etcd", "kube-apiserver"),
    )
    api_ready_s = time.monotonic() - started
    _spawn(
        cp,
        "kube-controller-manager",
        [
            str(tools.binary("kube-controller-manager")),
            f"--kubeconfig={directory / 'controller-manager.kubeconfig'}",
            f"--service-account-private-key-file={service_accounts.key}",
            f"--root-ca-file={ca.cert}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--secure-port=0",
            "--concurrent-job-syncs=20",
            "--concurrent-gc-syncs=20",
        ],
    )
    _spawn(
        cp,
        "kube-scheduler",
        [
            str(tools.binary("kube-scheduler")),
            f"--kubeconfig={directory / 'scheduler.kubeconfig'}",
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    _spawn(
        cp,
        "kwok",
        [
            str(tools.binary("kwok")),
            f"--kubeconfig={directory / 'kwok.kubeconfig'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-label-selector={FAKE_NODE_LABEL}={FAKE_NODE_LABEL_VALUE}",
            f"--config={tools.kwok_stages}",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.2",
        ],
    )
    everything = COMPONENTS
    nodes = [f"kwok-node-{i}" for i in range(fake_nodes)]
    manifests = [_fake_node(n) for n in nodes] + [_restricted_namespace(RESTRICTED_NAMESPACE)]
    cp.kubectl(
        "apply",
        "--server-side",
        "--field-manager=mlsteward-dev",
        "-f",
        "-",
        input_text=yaml.safe_dump_all(manifests),
    )

    def _default_service_account() -> bool:
        return cp.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    _wait(
        "the controller-manager to create the default ServiceAccount",
        _default_service_account,
        timeout_s,
        cp,
        everything,
    )
    if nodes:

        def _nodes_ready() -> bool:
            out = cp.kubectl(
                "get",
                "nodes",
                "-l",
                f"{FAKE_NODE_LABEL}={FAKE_NODE_LABEL_VALUE}",
                "-o",
                "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}",
                check=False,
            )
            return out.returncode == 0 and out.stdout.split() == ["True"] * len(nodes)

        _wait("KWOK to mark the fake nodes Ready", _nodes_ready, timeout_s, cp, everything)
    total_s = time.monotonic() - started
    state = json.loads((directory / "state.json").read_text())
    state["startup_seconds"] = {"apiserver_ready": round(api_ready_s, 2), "usable": round(total_s, 2)}
    (directory / "state.json").write_text(json.dumps(state, indent=2))
    return cp


def load(directory: pathlib.Path) -> ControlPlane | None:
    """The control plane recorded in ``directory``, running or not; None when there is none."""
    directory = directory.resolve()
    try:
        state = json.loads((directory / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    tools = toolchain.Toolchain(pathlib.Path(state["cache"]))
    return ControlPlane(directory=directory, toolchain=tools, api_port=int(state["ports"]["api"]))


def status(cp: ControlPlane) -> dict[str, bool]:
    """Component name -> whether its recorded process is alive."""
    result = {}
    for component in COMPONENTS:
        pid_file = cp.directory / "pids" / f"{component}.pid"
        result[component] = pid_file.is_file() and _alive(int(pid_file.read_text()))
    return result if any(result.values()) else {}


def down(directory: pathlib.Path, grace_s: float = 10) -> list[str]:
    """Stop every process recorded in ``directory`` (SIGTERM, then SIGKILL); return their names."""
    pids_dir = directory.resolve() / "pids"
    stopped: list[str] = []
    if not pids_dir.is_dir():
        return stopped
    targets: dict[str, int] = {}
    # Stop in reverse start order so clients go before the API server and etcd.
    for component in reversed(COMPONENTS):
        pid_file = pids_dir / f"{component}.pid"
        if pid_file.is_file():
            targets[component] = int(pid_file.read_text())
    for component, pid in targets.items():
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            stopped.append(component)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in targets.values()):
        time.sleep(0.1)
    for pid in targets.values():
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    # SIGKILL is asynchronous: a process can take a moment to die (longer on a busy machine),
    # and "down" means gone, so wait for that too.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in targets.values()):
        time.sleep(0.05)
    for component in targets:
        (pids_dir / f"{component}.pid").unlink(missing_ok=True)
    return stopped
