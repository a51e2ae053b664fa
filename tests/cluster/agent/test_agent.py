"""The development agent runs pods for real: processes, pod IPs, probes, volumes, Jobs, Deployments.

Every test talks to the real control plane (API server, scheduler, Job and Deployment
controllers) and checks what really happened: a process answered on its pod IP, a file
changed, a PID is gone. Pods pass the Pod Security "restricted" profile; the agent does not
enforce their securityContext.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from mlsteward.dev import controlplane
from mlsteward.dev.agent import AgentHandle, processes, start_agent

T = TypeVar("T")
Obj = dict[str, Any]

AGENT_NODE = {"type": "mlsteward-agent"}
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

# Answers GET with the pod's name, bound to the pod IP it got through the downward API.
SERVER = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["MY_POD_NAME"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer((os.environ["MY_IP"], 8080), Handler).serve_forever()
"""
SERVER_ENV = [
    {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    {"name": "MY_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
]
READINESS = {
    "httpGet": {"path": "/", "port": 8080},
    "periodSeconds": 1,
    "timeoutSeconds": 5,
    "failureThreshold": 3,
}
# Writes argv[2] to the termination-message file named by argv[1], then exits with argv[3].
WRITE_MESSAGE = "import sys; open(sys.argv[1], 'w').write(sys.argv[2]); sys.exit(int(sys.argv[3]))"


def container(name: str, command: list[str], **extra: Any) -> Obj:
    return {
        "name": name,
        "image": "mlsteward/never-pulled:dev",
        "command": command,
        "securityContext": CONTAINER_SECURITY,
        **extra,
    }


def pod_spec(containers: list[Obj], restart: str = "Never", **extra: Any) -> Obj:
    return {
        "nodeSelector": AGENT_NODE,
        "restartPolicy": restart,
        "terminationGracePeriodSeconds": 5,
        "securityContext": POD_SECURITY,
        "containers": containers,
        **extra,
    }


def pod(name: str, spec: Obj, labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }


def apply(cp: controlplane.ControlPlane, namespace: str, *objects: Obj) -> None:
    cp.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump_all(objects))


def get(cp: controlplane.ControlPlane, namespace: str, kind: str, name: str) -> Obj:
    result: Obj = json.loads(cp.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)
    return result


def eventually(probe: Callable[[], T | None], what: str, timeout_s: float = 60) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def pod_phase(cp: controlplane.ControlPlane, namespace: str, name: str, phases: set[str]) -> Obj:
    def _done() -> Obj | None:
        obj = get(cp, namespace, "pod", name)
        return obj if obj.get("status", {}).get("phase") in phases else None

    return eventually(_done, f"pod {name} to reach {sorted(phases)}")


def pid_of(status: Obj) -> int:
    return int(status["containerID"].rsplit("/", 1)[-1])


def group_gone(pgid: int, timeout_s: float = 10) -> bool:
    """Whether every process of the group has died (zombies waiting for init to reap them count as dead)."""
    deadline = time.monotonic() + timeout_s
    while _group(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_pod_serving_http_on_its_pod_ip_becomes_ready_through_its_readiness_probe(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    spec = pod_spec([container("web", ["python", "-c", SERVER], env=SERVER_ENV, readinessProbe=READINESS)])
    apply(control_plane, namespace, pod("web", spec))
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Ready", "--timeout=60s", "pod/web")
    status = get(control_plane, namespace, "pod", "web")
    assert status["spec"]["nodeName"] in agent.node_names
    pod_ip = status["status"]["podIP"]
    assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network("127.80.0.0/16")
    assert status["status"]["phase"] == "Running"
    with urllib.request.urlopen(f"http://{pod_ip}:8080/", timeout=5) as response:
        assert response.read() == b"web"


def test_environment_from_configmaps_secrets_and_the_downward_api_reaches_the_process(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"mode": "fast"},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"token": "s3cret"},
    }
    env = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "GREETING", "value": "hello $(NAME)"},
    ]
    env_from = [{"configMapRef": {"name": "settings"}, "prefix": "CM_"}, {"secretRef": {"name": "creds"}}]
    keys = ["MODE", "TOKEN", "NAME", "NS", "IP", "APP", "GREETING", "CM_mode", "token", "POD_IP"]
    dump = (
        "import json, os, sys\n"
        "open(sys.argv[1], 'w').write(json.dumps({k: os.environ.get(k) for k in sys.argv[2:]}))"
    )
    spec = pod_spec(
        [container("main", ["python", "-c", dump, "/dev/termination-log", *keys], env=env, envFrom=env_from)]
    )
    apply(control_plane, namespace, configmap, secret, pod("env", spec, labels={"app": "demo"}))
    done = pod_phase(control_plane, namespace, "env", {"Succeeded", "Failed"})
    assert done["status"]["phase"] == "Succeeded"
    seen = json.loads(done["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    pod_ip = done["status"]["podIP"]
    assert seen == {
        "MODE": "fast",
        "TOKEN": "s3cret",
        "NAME": "env",
        "NS": namespace,
        "IP": pod_ip,
        "APP": "demo",
        "GREETING": "hello env",
        "CM_mode": "fast",
        "token": "s3cret",
        "POD_IP": pod_ip,
    }


def test_a_configmap_update_reaches_the_mounted_file(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    def configmap(value: str) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "live"},
            "data": {"greeting": value},
        }

    # Waits until the mounted file says v2, then reports what it saw first and last.
    watcher = (
        "import sys, time\n"
        "first = open(sys.argv[1]).read()\n"
        "while open(sys.argv[1]).read() != 'v2':\n"
        "    time.sleep(0.2)\n"
        "open(sys.argv[2], 'w').write(first + ' then v2')\n"
    )
    spec = pod_spec(
        [
            container(
                "main",
                ["python", "-c", watcher, "/etc/live/greeting", "/dev/termination-log"],
                volumeMounts=[{"name": "live", "mountPath": "/etc/live"}],
            )
        ],
        volumes=[{"name": "live", "configMap": {"name": "live"}}],
    )
    apply(control_plane, namespace, configmap("v1"), pod("watcher", spec))
    eventually(
        lambda: get(control_plane, namespace, "pod", "watcher")["status"].get("phase") == "Running",
        "the watcher to run",
    )
    apply(control_plane, namespace, configmap("v2"))
    done = pod_phase(control_plane, namespace, "watcher", {"Succeeded", "Failed"})
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (done["status"]["phase"], terminated["message"]) == ("Succeeded", "v1 then v2")
    mounted = agent.state_dir / "pods" / done["metadata"]["uid"] / "volumes" / "live"
    assert (mounted / "..data").is_symlink()
    assert os.readlink(mounted / "greeting") == "..data/greeting"


def test_a_job_that_exits_zero_completes_with_its_termination_message(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    spec = pod_spec(
        [container("train", ["python", "-c", WRITE_MESSAGE, "/dev/termination-log", "trained", "0"])]
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "ok"},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }
    apply(control_plane, namespace, job)
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Complete", "--timeout=60s", "job/ok")
    pods = json.loads(
        control_plane.kubectl("get", "pods", "-n", namespace, "-l", "job-name=ok", "-o", "json").stdout
    )
    (done,) = pods["items"]
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert done["status"]["phase"] == "Succeeded"
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (
        0,
        "Completed",
        "trained",
    )


def test_a_job_whose_container_exits_3_fails_with_exit_code_3(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    spec = pod_spec(
        [
            container(
                "train",
                ["sh", "-c", "echo data is broken; exit 3"],
                terminationMessagePolicy="FallbackToLogsOnError",
            )
        ]
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "bad"},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }
    apply(control_plane, namespace, job)
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Failed", "--timeout=60s", "job/bad")
    pods = json.loads(
        control_plane.kubectl("get", "pods", "-n", namespace, "-l", "job-name=bad", "-o", "json").stdout
    )
    (failed,) = pods["items"]
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert failed["status"]["phase"] == "Failed"
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (
        3,
        "Error",
        "data is broken",
    )
    # kubectl logs goes through the API server to the agent's log endpoint.
    assert control_plane.kubectl("logs", "-n", namespace, "job/bad").stdout == "data is broken\n"


def test_restart_policy_always_restarts_a_crashed_container(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    spec = pod_spec([container("crash", ["sh", "-c", "sleep 0.3; exit 1"])], restart="Always")
    apply(control_plane, namespace, pod("crash", spec))

    def restarted_twice() -> Obj | None:
        statuses = get(control_plane, namespace, "pod", "crash")["status"].get("containerStatuses") or [{}]
        return statuses[0] if statuses[0].get("restartCount", 0) >= 2 else None

    status = eventually(restarted_twice, "two restarts")
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert get(control_plane, namespace, "pod", "crash")["status"]["phase"] == "Running"


def test_a_failing_liveness_probe_restarts_the_container(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    liveness = {"exec": {"command": ["sh", "-c", "exit 1"]}, "periodSeconds": 1, "failureThreshold": 2}
    spec = pod_spec([container("main", ["sleep", "1000"], livenessProbe=liveness)], restart="Always")
    apply(control_plane, namespace, pod("unhealthy", spec))

    def restarted() -> Obj | None:
        statuses = get(control_plane, namespace, "pod", "unhealthy")["status"].get("containerStatuses") or [
            {}
        ]
        return statuses[0] if statuses[0].get("restartCount", 0) >= 1 else None

    status = eventually(restarted, "a restart after liveness failures")
    assert status["lastState"]["terminated"]["exitCode"] == 128 + signal.SIGTERM

    def reasons() -> set[str] | None:
        listing = control_plane.kubectl(
            "get", "events", "-n", namespace, "--field-selector=involvedObject.name=unhealthy", "-o", "json"
        )
        seen = {item["reason"] for item in json.loads(listing.stdout)["items"]}
        return seen if {"Started", "Unhealthy", "Killing"} <= seen else None

    eventually(reasons, "Started, Unhealthy and Killing events", timeout_s=20)


def test_deleting_a_pod_kills_its_process_group_and_the_pod_disappears(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    spec = pod_spec([container("main", ["sh", "-c", "sleep 1000 & sleep 1000 & wait"])], restart="Always")
    apply(control_plane, namespace, pod("doomed", spec))
    running = pod_phase(control_plane, namespace, "doomed", {"Running"})
    pgid = pid_of(running["status"]["containerStatuses"][0])
    eventually(lambda: len(_group(pgid)) >= 3, "the shell and its two children")
    control_plane.kubectl("delete", "pod", "doomed", "-n", namespace, "--timeout=30s")
    gone = control_plane.kubectl("get", "pod", "doomed", "-n", namespace, check=False)
    assert "NotFound" in gone.stderr
    assert group_gone(pgid), f"processes of group {pgid} survived: {_group(pgid)}"


def _group(pgid: int) -> list[int]:
    """The live (not zombie) members of a process group."""
    members = []
    for proc in os.listdir("/proc"):
        if proc.isdigit():
            try:
                if os.getpgid(int(proc)) == pgid and not _zombie(int(proc)):
                    members.append(int(proc))
            except ProcessLookupError:
                continue
    return members


def test_a_deployment_of_two_replicas_becomes_ready_through_the_deployment_controller(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    labels = {"app": "web"}
    # The probes of the operator's serving pods: startup, then readiness and liveness, on a named port.
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1, "timeoutSeconds": 5}
    web = container(
        "web",
        ["python", "-c", SERVER],
        env=SERVER_ENV,
        ports=[{"name": "http", "containerPort": 8080}],
        startupProbe={**probe, "failureThreshold": 30},
        readinessProbe={**probe, "failureThreshold": 3},
        livenessProbe={**probe, "failureThreshold": 3},
    )
    template_spec = pod_spec([web], restart="Always")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": template_spec},
        },
    }
    apply(control_plane, namespace, deployment)
    control_plane.kubectl(
        "wait", "-n", namespace, "--for=jsonpath={.status.readyReplicas}=2", "--timeout=90s", "deployment/web"
    )
    status = get(control_plane, namespace, "deployment", "web")["status"]
    assert status["availableReplicas"] == 2
    pods = json.loads(
        control_plane.kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json").stdout
    )
    answers = set()
    for item in pods["items"]:
        with urllib.request.urlopen(f"http://{item['status']['podIP']}:8080/", timeout=5) as response:
            answers.add(response.read().decode())
    assert answers == {item["metadata"]["name"] for item in pods["items"]}
    assert len(answers) == 2


def test_init_containers_run_in_order_before_the_main_container(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    append = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + ';')"
    report = "import sys; open(sys.argv[2], 'w').write(open(sys.argv[1]).read() + 'main')"
    mounts = [{"name": "work", "mountPath": "/work"}]
    spec = pod_spec(
        [
            container(
                "main", ["python", "-c", report, "/work/order", "/dev/termination-log"], volumeMounts=mounts
            )
        ],
        initContainers=[
            container("first", ["python", "-c", append, "/work/order", "first"], volumeMounts=mounts),
            container(
                "second",
                ["sh", "-c", 'sleep 0.5; python -c "$0" "$1" second', append, "$(OUT)"],
                volumeMounts=mounts,
                env=[{"name": "OUT", "value": "/work/order"}],
            ),
        ],
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    apply(control_plane, namespace, pod("ordered", spec))
    done = pod_phase(control_plane, namespace, "ordered", {"Succeeded", "Failed"})
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == "first;second;main"
    init = [s["state"]["terminated"] for s in done["status"]["initContainerStatuses"]]
    assert [s["exitCode"] for s in init] == [0, 0]
    assert init[1]["finishedAt"] <= done["status"]["containerStatuses"][0]["state"]["terminated"]["startedAt"]


def test_agent_shutdown_leaves_no_stray_processes(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    state = agent.state_dir.parent / "agent-shutdown-state"
    second = start_agent(control_plane, state, nodes=1, name_prefix="shutdown", backoff_s=1.0)
    try:
        spec = pod_spec(
            [container("main", ["sh", "-c", "sleep 1000 & sleep 1000 & wait"])],
            restart="Always",
            nodeSelector={"kubernetes.io/hostname": "shutdown-0"},
        )
        apply(control_plane, namespace, pod("left-behind", spec))
        pod_phase(control_plane, namespace, "left-behind", {"Running"})

        def _three() -> list[int] | None:
            found = processes.find_strays(state)
            return found if len(found) >= 3 else None

        started = eventually(_three, "the shell and its two children")
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(30) == 0
        assert processes.find_strays(state) == []
        assert all(not os.path.exists(f"/proc/{pid}") or _zombie(pid) for pid in started)
    finally:
        second.stop()
        control_plane.kubectl(
            "delete", "pod", "left-behind", "-n", namespace, "--force", "--grace-period=0", check=False
        )
        control_plane.kubectl("delete", "node", "shutdown-0", check=False)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def test_a_claim_maps_to_the_agents_directory_for_it_and_outlives_the_pod(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"pv-{namespace}"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual",
            "hostPath": {"path": "/nonexistent/the-agent-ignores-this"},
            "claimRef": {"namespace": namespace, "name": "artifacts"},
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "artifacts"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual",
            "volumeName": f"pv-{namespace}",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    write = "import sys; open(sys.argv[1].removeprefix('--out='), 'w').write('model bytes')"
    spec = pod_spec(
        [
            container(
                "main",
                ["python", "-c", write, "--out=/artifacts/model.onnx"],
                volumeMounts=[{"name": "store", "mountPath": "/artifacts"}],
            )
        ],
        volumes=[{"name": "store", "persistentVolumeClaim": {"claimName": "artifacts"}}],
    )
    control_plane.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(volume))
    try:
        apply(control_plane, namespace, claim, pod("writer", spec))
        done = pod_phase(control_plane, namespace, "writer", {"Succeeded", "Failed"})
        assert done["status"]["phase"] == "Succeeded"
        control_plane.kubectl("delete", "pod", "writer", "-n", namespace, "--timeout=30s")
        written = agent.state_dir / "volumes" / "pvc" / namespace / "artifacts" / "model.onnx"
        assert written.read_text() == "model bytes"
    finally:
        control_plane.kubectl("delete", "pv", f"pv-{namespace}", "--wait=false", check=False)


def test_a_sidecar_init_container_runs_beside_the_main_container_and_stops_with_the_pod(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    # The main container succeeds only if the sidecar is still running when it checks.
    check = "import os, sys, time; time.sleep(1); sys.exit(0 if os.path.exists(sys.argv[1]) else 9)"
    mounts = [{"name": "shared", "mountPath": "/shared"}]
    sidecar = container(
        "sidecar",
        ["sh", "-c", 'touch "$MARK"; trap \'rm -f "$MARK"; exit 0\' TERM; while :; do sleep 0.1; done'],
        env=[{"name": "MARK", "value": "/shared/alive"}],
        volumeMounts=mounts,
        restartPolicy="Always",
    )
    spec = pod_spec(
        [container("main", ["python", "-c", check, "/shared/alive"], volumeMounts=mounts)],
        initContainers=[sidecar],
        volumes=[{"name": "shared", "emptyDir": {}}],
    )
    apply(control_plane, namespace, pod("with-sidecar", spec))
    done = pod_phase(control_plane, namespace, "with-sidecar", {"Succeeded", "Failed"})
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert done["status"]["phase"] == "Succeeded"

    def sidecar_stopped() -> Obj | None:
        statuses = get(control_plane, namespace, "pod", "with-sidecar")["status"]["initContainerStatuses"]
        return statuses[0] if "terminated" in statuses[0]["state"] else None

    eventually(sidecar_stopped, "the sidecar to be stopped")


def test_an_agent_killed_outright_is_cleaned_up_after_and_carried_on_by_the_next_one(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    state = agent.state_dir.parent / "agent-restart-state"
    spec = pod_spec(
        [container("main", ["sh", "-c", "sleep 1000 & sleep 1000 & wait"])],
        restart="Always",
        nodeSelector={"kubernetes.io/hostname": "restart-0"},
    )
    first = start_agent(control_plane, state, nodes=1, name_prefix="restart", backoff_s=1.0)
    second: AgentHandle | None = None
    try:
        apply(control_plane, namespace, pod("survivor", spec))
        before = pod_phase(control_plane, namespace, "survivor", {"Running"})
        pgid = pid_of(before["status"]["containerStatuses"][0])
        eventually(lambda: len(_group(pgid)) >= 3, "the shell and its two children")
        first.process.kill()
        first.process.wait(10)
        second = start_agent(control_plane, state, nodes=1, name_prefix="restart", backoff_s=1.0)
        assert group_gone(pgid), f"the earlier agent's processes survived: {_group(pgid)}"

        def restarted() -> Obj | None:
            statuses = get(control_plane, namespace, "pod", "survivor")["status"]["containerStatuses"]
            return (
                statuses[0]
                if statuses[0].get("restartCount") == 1 and "running" in statuses[0]["state"]
                else None
            )

        after = eventually(restarted, "the pod's container to run again under the new agent")
        assert pid_of(after) != pgid
        assert (
            get(control_plane, namespace, "pod", "survivor")["status"]["podIP"] == before["status"]["podIP"]
        )
    finally:
        control_plane.kubectl("delete", "pod", "survivor", "-n", namespace, "--timeout=30s", check=False)
        if second is not None:
            second.stop()
        first.stop()
        control_plane.kubectl("delete", "node", "restart-0", check=False)


def test_a_pod_past_its_active_deadline_is_stopped_and_fails(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    spec = pod_spec([container("main", ["sleep", "1000"])], restart="Always", activeDeadlineSeconds=2)
    apply(control_plane, namespace, pod("late", spec))
    running = pod_phase(control_plane, namespace, "late", {"Running", "Failed"})
    pid = pid_of(running["status"]["containerStatuses"][0])
    failed = pod_phase(control_plane, namespace, "late", {"Failed"})
    assert failed["status"]["reason"] == "DeadlineExceeded"
    assert "terminated" in failed["status"]["containerStatuses"][0]["state"]
    assert group_gone(pid)


def test_a_container_waits_for_a_missing_configmap_and_starts_once_it_exists(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "mode"}}}]
    script = "import os, sys; open(sys.argv[1], 'w').write(os.environ['MODE'])"
    spec = pod_spec([container("main", ["python", "-c", script, "/dev/termination-log"], env=env)])
    apply(control_plane, namespace, pod("patient", spec))

    def waiting_reason() -> str | None:
        statuses = get(control_plane, namespace, "pod", "patient")["status"].get("containerStatuses") or [{}]
        return str(statuses[0].get("state", {}).get("waiting", {}).get("reason") or "") or None

    assert eventually(
        lambda: waiting_reason() if waiting_reason() == "CreateContainerConfigError" else None,
        "CreateContainerConfigError",
    )
    late = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}, "data": {"mode": "ok"}}
    apply(control_plane, namespace, late)
    done = pod_phase(control_plane, namespace, "patient", {"Succeeded", "Failed"})
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == "ok"


def test_readiness_follows_an_exec_probe_both_ways(
    control_plane: controlplane.ControlPlane, agent: AgentHandle, namespace: str
) -> None:
    # Ready while /flag/ready exists: the program creates it, then removes it 6 s later.
    script = (
        "import os, sys, time\n"
        "open(sys.argv[1], 'w').close()\n"
        "time.sleep(6)\n"
        "os.remove(sys.argv[1])\n"
        "time.sleep(1000)\n"
    )
    readiness = {
        "exec": {"command": ["test", "-f", "/flag/ready"]},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    mounts = [{"name": "flag", "mountPath": "/flag"}]
    spec = pod_spec(
        [
            container(
                "main", ["python", "-c", script, "/flag/ready"], volumeMounts=mounts, readinessProbe=readiness
            )
        ],
        restart="Always",
        volumes=[{"name": "flag", "emptyDir": {}}],
    )
    apply(control_plane, namespace, pod("flapping", spec))

    def ready_status() -> str:
        conditions = get(control_plane, namespace, "pod", "flapping")["status"].get("conditions") or []
        return next((str(c["status"]) for c in conditions if c["type"] == "Ready"), "")

    eventually(lambda: ready_status() == "True", "Ready=True while the file exists")
    eventually(lambda: ready_status() == "False", "Ready=False once the file is gone", timeout_s=30)
    status = get(control_plane, namespace, "pod", "flapping")["status"]
    assert status["phase"] == "Running"
    assert status["containerStatuses"][0]["ready"] is False
    assert status["containerStatuses"][0]["restartCount"] == 0
