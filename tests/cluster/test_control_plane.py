"""The local control plane is real: scheduling, KWOK nodes, the Job controller, Pod Security."""

from __future__ import annotations

import ipaddress
import json
import time

import yaml

from mlsteward.dev import controlplane


def _restricted_pod_spec() -> dict[str, object]:
    return {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "main",
                "image": "mlsteward/placeholder:never-pulled",
                "command": ["true"],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": True,
                },
            }
        ],
    }


def test_the_api_server_reports_the_pinned_kubernetes_version(
    control_plane: controlplane.ControlPlane,
) -> None:
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.36.3"
    assert version["clientVersion"]["gitVersion"] == "v1.36.3"


def test_a_restricted_namespace_exists_for_workloads(control_plane: controlplane.ControlPlane) -> None:
    labels = json.loads(
        control_plane.kubectl("get", "namespace", controlplane.RESTRICTED_NAMESPACE, "-o", "json").stdout
    )["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_a_job_runs_on_a_fake_node_with_a_loopback_pod_ip_and_completes(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "hello"},
        "spec": {"backoffLimit": 0, "template": {"spec": _restricted_pod_spec()}},
    }
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(job))
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Complete", "--timeout=60s", "job/hello")
    pods = json.loads(
        control_plane.kubectl("get", "pods", "-n", namespace, "-l", "job-name=hello", "-o", "json").stdout
    )
    (pod,) = pods["items"]
    assert pod["spec"]["nodeName"].startswith("kwok-node-")
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(controlplane.POD_CIDR)


def test_a_pod_without_a_restricted_security_context_is_refused_in_a_restricted_namespace(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unrestricted"},
        "spec": {"containers": [{"name": "main", "image": "x"}]},
    }
    result = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(pod), check=False
    )
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted' in result.stderr
    assert "runAsNonRoot" in result.stderr


def test_deleting_an_owner_garbage_collects_its_children(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("create", "configmap", "owner", "-n", namespace)
    uid = control_plane.kubectl(
        "get", "configmap", "owner", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}],
        },
    }
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(child))
    control_plane.kubectl("delete", "configmap", "owner", "-n", namespace)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if control_plane.kubectl("get", "configmap", "child", "-n", namespace, check=False).returncode != 0:
            return
        time.sleep(0.5)
    raise AssertionError("the garbage collector did not delete the child within 30 s")
