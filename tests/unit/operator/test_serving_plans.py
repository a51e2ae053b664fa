"""The Deployment and Monitor reconcilers' pure plans."""

from __future__ import annotations

from typing import Any

from mlsteward.api import deployment as api_deployment
from mlsteward.api import monitor as api_monitor
from mlsteward.operator import settings as settings_module
from mlsteward.operator.reconcilers import deployments, monitors

SETTINGS = settings_module.Settings()
NOW = "2026-11-23T10:00:00Z"
Json = dict[str, Any]


def _body(kind: str, spec: Json, status: Json | None = None) -> Json:
    return {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "serve", "namespace": "risk", "uid": f"uid-{kind}", "generation": 2},
        "spec": spec,
        "status": status or {},
    }


def _model() -> Json:
    def version(number: int) -> Json:
        return {
            "version": number,
            "phase": "Succeeded",
            "artifact": {"digest": f"{number:064x}", "uri": "file:///x"},
            "gates": {"quality": "passed", "fairness": "passed", "promotable": True},
        }

    return {
        "spec": {
            "task": "classification",
            "dataset": {"uri": "/d.csv", "target": "label", "features": ["a"]},
            "estimator": {"className": "LogisticRegression"},
            "artifactStore": {"claimName": "models"},
        },
        "status": {"versions": [version(1), version(2)], "aliases": {"champion": 1, "challenger": 2}},
    }


def _deployment_plan(
    spec: Json, model: Json | None, observed: Json | None = None, status: Json | None = None
) -> Any:
    body = _body("Deployment", spec, status)
    return deployments.plan(
        body,
        api_deployment.DeploymentSpec.model_validate(spec),
        model=model,
        observed=observed if observed is not None else {"Deployment": None, "HorizontalPodAutoscaler": None},
        settings=SETTINGS,
        now=NOW,
    )


def _types(status: Json) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_without_the_model_nothing_is_applied_and_the_deployment_waits() -> None:
    result = _deployment_plan({"modelRef": {"name": "credit"}}, None)
    assert result.apply == [] and result.delete == []
    assert _types(result.status)["Ready"] == ("False", "ModelNotFound")
    assert _types(result.status)["Reconciling"] == ("True", "ModelNotFound")
    assert result.status["observedGeneration"] == 2 and result.status["phase"] == "Pending"


def test_a_resolved_champion_gives_exactly_three_children_and_reports_rolling_out() -> None:
    result = _deployment_plan({"modelRef": {"name": "credit"}}, _model())
    kinds = sorted((c["kind"], c["metadata"]["name"]) for c in result.apply)
    assert kinds == [("ConfigMap", "serve-routing"), ("Deployment", "serve"), ("Service", "serve")]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for c in result.apply
        if c["kind"] == "Deployment"
        for v in c["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["models"], "the store is the Model's claim"
    assert result.status["activeVersion"] == 1 and result.status["endpoint"].endswith(":8080")
    assert _types(result.status)["Ready"] == ("False", "RollingOut")
    assert [e.reason for e in result.events] == ["VersionChanged"]


def test_a_rolled_out_child_makes_the_deployment_ready() -> None:
    child = {
        "metadata": {"generation": 3},
        "status": {"observedGeneration": 3, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1},
    }
    result = _deployment_plan(
        {"modelRef": {"name": "credit"}}, _model(), {"Deployment": child, "HorizontalPodAutoscaler": None}
    )
    assert _types(result.status)["Ready"] == ("True", "Available")
    assert result.status["readyReplicas"] == 1 and result.status["phase"] == "Ready"


def test_a_canary_follows_the_challenger_with_its_share() -> None:
    result = _deployment_plan({"modelRef": {"name": "credit"}, "canary": {"trafficPercent": 25}}, _model())
    assert (result.status["canaryVersion"], result.status["canaryTrafficPercent"]) == (2, 25)


def test_removing_autoscaling_deletes_the_autoscaler_the_operator_made() -> None:
    result = _deployment_plan(
        {"modelRef": {"name": "credit"}, "replicas": 2},
        _model(),
        {"Deployment": None, "HorizontalPodAutoscaler": {"metadata": {"name": "serve"}}},
    )
    assert [(d["kind"], d["metadata"]["name"]) for d in result.delete] == [
        ("HorizontalPodAutoscaler", "serve")
    ]


def _monitor_plan(
    target: Json | None, digest: str | None, summaries: list[Json] | None, status: Json | None = None
) -> Any:
    spec = {"deploymentRef": {"name": "serve"}, "window": {"size": 5000, "minSamples": 1000}}
    return monitors.plan(
        _body("Monitor", spec, status),
        api_monitor.MonitorSpec.model_validate(spec),
        target=target,
        digest=digest,
        summaries=summaries,
        settings=SETTINGS,
        now=NOW,
    )


def _summary(drifting: bool) -> Json:
    return {
        "evaluation": {
            "rows": 4000,
            "state": "drift" if drifting else "ok",
            "drifting": drifting,
            "driftingFeatures": int(drifting),
            "consecutiveBreaches": int(drifting) * 2,
            "features": [
                {"name": "income", "test": "wasserstein", "score": 0.3 if drifting else 0.01,
                 "threshold": 0.1, "state": "drift" if drifting else "ok"}
            ],
        }
    }  # fmt: skip


def test_a_monitor_without_its_deployment_waits_and_injects_nothing() -> None:
    result = _monitor_plan(None, None, None)
    assert result.apply == [] and result.status["phase"] == "Pending"
    assert _types(result.status)["Ready"] == ("False", "DeploymentNotFound")


def test_no_answer_is_insufficient_data_never_no_drift() -> None:
    result = _monitor_plan({"status": {}}, "a" * 64, [])
    types = _types(result.status)
    assert types["InsufficientData"] == ("True", "NoSummaries")
    assert types["Drifting"][0] == "Unknown"
    assert result.status["phase"] == "InsufficientData"


def test_drift_is_reported_with_an_event_only_on_the_transition() -> None:
    calm = _monitor_plan({"status": {}}, "a" * 64, [_summary(False)])
    assert _types(calm.status)["Drifting"] == ("False", "NoDrift") and calm.status["phase"] == "Healthy"
    drifting = _monitor_plan({"status": {}}, "a" * 64, [_summary(True)], status=calm.status)
    assert _types(drifting.status)["Drifting"] == ("True", "DriftDetected")
    assert drifting.status["features"][0]["name"] == "income" and drifting.status["driftingFeatures"] == 1
    assert [e.reason for e in drifting.events] == ["DriftDetected"]
    still = _monitor_plan({"status": {}}, "a" * 64, [_summary(True)], status=drifting.status)
    assert still.events == []


def test_between_evaluations_the_previous_verdict_is_kept() -> None:
    drifting = _monitor_plan({"status": {}}, "a" * 64, [_summary(True)])
    kept = _monitor_plan({"status": {}}, "a" * 64, None, status=drifting.status)
    assert _types(kept.status)["Drifting"] == ("True", "DriftDetected")
    assert "features" not in kept.status, "no evaluation in this pass: the numbers are left as they are"
