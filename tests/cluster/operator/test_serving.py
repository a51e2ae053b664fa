"""Deployments and Monitors against the real control plane: the examples end to end (children,
owner references, readiness, garbage collection), routing, autoscaling, sidecar and drift."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml

from mlsteward.dev import controlplane
from tests.cluster.operator.conftest import REPO_ROOT, Kit, OperatorProcess, PodEndpoint, monitor_summary
from tests.cluster.operator.test_models import outcome

Json = dict[str, Any]
# Training pods go to a node pool that does not exist, so KWOK never "completes" them and
# the test decides their outcome; serving pods run on KWOK's nodes.
TRAINING_POOL = ("--training-node-selector", "mlsteward.io/pool=training")
API = "mlsteward.io/v1alpha1"


def _owned_by(item: Json, uid: str) -> bool:
    return any(r["uid"] == uid and r.get("controller") for r in item["metadata"].get("ownerReferences", []))


def _children(kit: Kit, uid: str) -> set[str]:
    found = set()
    for resource in ("jobs", "deployments.apps", "services", "configmaps", "horizontalpodautoscalers"):
        for item in kit.items(resource):
            if _owned_by(item, uid):
                found.add(f"{resource}/{item['metadata']['name']}")
    return found


def _uid(kit: Kit, resource: str, name: str) -> str:
    body = kit.get(resource, name)
    assert body is not None, f"{resource}/{name} does not exist"
    return str(body["metadata"]["uid"])


def _train_champion(kit: Kit, name: str, digest: str = "a" * 64) -> None:
    kit.finish_training(f"{name}-v1", outcome(digest))
    kit.wait_for("the champion", lambda: (kit.model_status(name).get("aliases") or {}).get("champion") == 1)


def test_the_examples_create_exactly_their_children_become_ready_and_deleting_them_removes_everything(
    kit: Kit, start_operator: Callable[..., OperatorProcess], bound_store: str
) -> None:
    start_operator(*TRAINING_POOL)
    for name in ("credit-model", "credit-deployment", "credit-monitor"):
        kit.apply(REPO_ROOT / "examples" / f"{name}.yaml")
    kit.wait_for("the training Job", lambda: kit.get("jobs", "credit-risk-v1"))
    _train_champion(kit, "credit-risk")
    for kind in ("models", "deployments", "monitors"):
        kit.wait_ready(f"{kind}.mlsteward.io", "credit-risk")

    model_uid = _uid(kit, "models.mlsteward.io", "credit-risk")
    deployment_uid = _uid(kit, "deployments.mlsteward.io", "credit-risk")
    monitor_uid = _uid(kit, "monitors.mlsteward.io", "credit-risk")
    assert _children(kit, model_uid) == {"jobs/credit-risk-v1"}
    assert _children(kit, deployment_uid) == {
        "deployments.apps/credit-risk",
        "services/credit-risk",
        "configmaps/credit-risk-routing",
    }
    assert _children(kit, monitor_uid) == {"configmaps/credit-risk-monitor"}

    status = (kit.get("deployments.mlsteward.io", "credit-risk") or {})["status"]
    assert status["activeVersion"] == 1 and status["readyReplicas"] == 1
    assert status["endpoint"].startswith("http://credit-risk.")
    routing = json.loads((kit.get("configmaps", "credit-risk-routing") or {})["data"]["routing.json"])
    assert routing["champion"] == {"version": "1", "digest": "a" * 64} and routing["model"] == "credit-risk"

    apps = kit.get("deployments.apps", "credit-risk") or {}
    pod_spec = apps["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod_spec["containers"]}
    assert set(containers) == {"server", "monitor"}
    server = containers["server"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert all(m["readOnly"] for m in server["volumeMounts"] if m["name"] == "artifact-store")
    assert containers["monitor"]["command"][:2] == ["mlsteward", "monitor"]
    assert "a" * 64 in containers["monitor"]["command"]
    ports = {p["name"] for p in (kit.get("services", "credit-risk") or {})["spec"]["ports"]}
    assert ports == {"http", "monitor"}
    # Pod Security "restricted" admitted the serving pod with its sidecar.
    kit.wait_for(
        "a serving pod with the sidecar",
        lambda: any(
            len(p["spec"]["containers"]) == 2
            for p in kit.items("pods", "mlsteward.io/deployment=credit-risk")
        ),
        timeout=120,
    )

    kit.kubectl("delete", "monitors.mlsteward.io", "credit-risk", "--timeout=60s")
    kit.wait_for(
        "the sidecar to be removed",
        lambda: (
            [
                c["name"]
                for c in (kit.get("deployments.apps", "credit-risk") or {})["spec"]["template"]["spec"][
                    "containers"
                ]
            ]
            == ["server"]
        ),
    )
    assert {p["name"] for p in (kit.get("services", "credit-risk") or {})["spec"]["ports"]} == {"http"}

    kit.kubectl("delete", "deployments.mlsteward.io,models.mlsteward.io", "credit-risk", "--timeout=60s")
    kit.wait_for(
        "the garbage collector to remove every child",
        lambda: (
            not _children(kit, model_uid)
            and not _children(kit, deployment_uid)
            and not _children(kit, monitor_uid)
        ),
        timeout=120,
    )
    assert kit.items("models.mlsteward.io") == [] and kit.items("monitors.mlsteward.io") == []


def _deployment(name: str, model: str, **spec: Any) -> Json:
    return {
        "apiVersion": API,
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"modelRef": {"name": model}, **spec},
    }


def _model(name: str) -> str:
    text = (REPO_ROOT / "examples" / "credit-model.yaml").read_text()
    body = yaml.safe_load(text)
    body["metadata"]["name"] = name
    return yaml.safe_dump(body)


def test_a_new_version_changes_the_routing_config_map_and_not_the_pod_template(
    kit: Kit, start_operator: Callable[..., OperatorProcess], bound_store: str
) -> None:
    start_operator(*TRAINING_POOL)
    kit.apply(_model("credit"))
    _train_champion(kit, "credit")
    kit.kubectl("annotate", "models.mlsteward.io", "credit", "mlsteward.io/retrain=2")
    kit.finish_training("credit-v2", outcome("b" * 64))
    kit.wait_for("version 2", lambda: len(kit.model_status("credit").get("versions", [])) == 2)
    kit.apply(_deployment("serve", "credit", modelRef={"name": "credit", "version": 1}))
    kit.wait_ready("deployments.mlsteward.io", "serve")
    before = kit.get("deployments.apps", "serve") or {}
    kit.apply(_deployment("serve", "credit", modelRef={"name": "credit", "version": 2}))

    def routed_to_2() -> bool:
        data = (kit.get("configmaps", "serve-routing") or {}).get("data", {})
        routing: Json = json.loads(data.get("routing.json", "{}"))
        return bool(routing.get("champion", {}).get("version") == "2")

    kit.wait_for("the routing to name version 2", routed_to_2)
    after = kit.get("deployments.apps", "serve") or {}
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    kit.wait_for(
        "status to report version 2",
        lambda: (
            (kit.get("deployments.mlsteward.io", "serve") or {}).get("status", {}).get("activeVersion") == 2
        ),
    )
    assert any(e["reason"] == "VersionChanged" for e in kit.events("serve"))


def test_a_canary_version_and_share_go_into_the_routing(
    kit: Kit, start_operator: Callable[..., OperatorProcess], bound_store: str
) -> None:
    start_operator(*TRAINING_POOL)
    kit.apply(_model("credit"))
    _train_champion(kit, "credit")
    kit.kubectl("annotate", "models.mlsteward.io", "credit", "mlsteward.io/retrain=2")
    kit.finish_training("credit-v2", outcome("b" * 64))
    kit.wait_for(
        "the challenger", lambda: kit.model_status("credit").get("aliases", {}).get("challenger") == 2
    )
    kit.apply(_deployment("serve", "credit", canary={"trafficPercent": 20}))
    status = kit.wait_for(
        "the canary in status",
        lambda: (
            (kit.get("deployments.mlsteward.io", "serve") or {}).get("status", {}).get("canaryVersion") == 2
            and (kit.get("deployments.mlsteward.io", "serve") or {})["status"]
        ),
    )
    assert status["activeVersion"] == 1 and status["canaryTrafficPercent"] == 20
    routing = json.loads((kit.get("configmaps", "serve-routing") or {})["data"]["routing.json"])
    assert routing["challenger"] == {"version": "2", "digest": "b" * 64, "share": 20, "mode": "split"}


def test_autoscaling_adds_an_autoscaler_and_removing_it_deletes_the_autoscaler(
    kit: Kit, start_operator: Callable[..., OperatorProcess], bound_store: str
) -> None:
    start_operator(*TRAINING_POOL)
    kit.apply(_model("credit"))
    _train_champion(kit, "credit")
    kit.apply(_deployment("serve", "credit", autoscaling={"minReplicas": 1, "maxReplicas": 3}))
    hpa = kit.wait_for("the autoscaler", lambda: kit.get("horizontalpodautoscalers", "serve"))
    assert hpa["spec"]["maxReplicas"] == 3 and hpa["spec"]["scaleTargetRef"]["name"] == "serve"
    kit.apply(_deployment("serve", "credit", replicas=2))
    kit.wait_for("the autoscaler to go", lambda: kit.get("horizontalpodautoscalers", "serve") is None)
    kit.wait_for(
        "two replicas",
        lambda: (kit.get("deployments.apps", "serve") or {}).get("spec", {}).get("replicas") == 2,
    )


def test_the_monitor_reads_summaries_from_the_pods_and_reports_drift_with_events(
    kit: Kit,
    start_operator: Callable[..., OperatorProcess],
    bound_store: str,
    pod_endpoint: Callable[[str, int], PodEndpoint],
) -> None:
    # The stand-in listens on the serving pod's IP at the port the operator is told.
    port = controlplane.free_port()
    start_operator(*TRAINING_POOL, "--monitor-port", str(port))
    kit.apply(_model("credit"))
    _train_champion(kit, "credit")
    kit.apply(_deployment("serve", "credit"))
    monitor = {
        "apiVersion": API,
        "kind": "Monitor",
        "metadata": {"name": "watch"},
        "spec": {"deploymentRef": {"name": "serve"}, "evaluationIntervalSeconds": 5},
    }
    kit.apply(monitor)
    pod = kit.wait_for(
        "a running serving pod with the sidecar",
        lambda: next(
            (
                p
                for p in kit.items("pods", "mlsteward.io/deployment=serve")
                if p.get("status", {}).get("podIP")
                and len(p["spec"]["containers"]) == 2
                and not p["metadata"].get("deletionTimestamp")
            ),
            None,
        ),
        timeout=120,
    )
    server = pod_endpoint(pod["status"]["podIP"], port)

    def status() -> Json:
        found: Json = (kit.get("monitors.mlsteward.io", "watch") or {}).get("status") or {}
        return found

    def condition(type_: str) -> str:
        return next((c["status"] for c in status().get("conditions", []) if c["type"] == type_), "")

    kit.wait_for("a first evaluation without drift", lambda: condition("Drifting") == "False", timeout=120)
    assert condition("InsufficientData") == "False" and status()["samples"] >= 5000
    server.summary = monitor_summary(True)
    kit.wait_for("drift to be reported", lambda: condition("Drifting") == "True", timeout=120)
    current = status()
    assert current["driftingFeatures"] == 1 and current["phase"] == "Drifting"
    assert current["features"][0]["name"] == "income" and current["features"][0]["drifting"] is True
    kit.wait_for(
        "the DriftDetected Event", lambda: any(e["reason"] == "DriftDetected" for e in kit.events("watch"))
    )
    server.close()
    kit.wait_for(
        "no answers to read as insufficient data", lambda: condition("InsufficientData") == "True", 120
    )
