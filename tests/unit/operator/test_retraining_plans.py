"""Retraining in the Model and Monitor plans: a Monitor's request after N breaching
evaluations, the Model's cooldown and cap, NothingToRetrain, the schedule, the champion
annotation and the relative challenger gates."""

from __future__ import annotations

from typing import Any

from mlsteward.api import model as api_model
from mlsteward.api import monitor as api_monitor
from mlsteward.operator import settings as settings_module
from mlsteward.operator.reconcilers import models, monitors

SETTINGS = settings_module.Settings()
NOW = "2026-11-23T10:00:00Z"
PINNED = "d" * 64
Json = dict[str, Any]


def _spec(**retraining: Any) -> api_model.ModelSpec:
    return api_model.ModelSpec.model_validate(
        {
            "task": "classification",
            "dataset": {"uri": "/d.csv", "target": "y", "features": ["a"], "sha256": PINNED},
            "estimator": {"className": "LogisticRegression"},
            "retraining": retraining,
        }
    )


def _version(number: int, dataset: str = PINNED, roc_auc: float = 0.8) -> Json:
    return {
        "version": number,
        "phase": "Succeeded",
        "generation": 1,
        "artifact": {"digest": f"{number:064x}", "uri": "file:///x"},
        "datasetSha256": dataset,
        "specHash": "e" * 64,
        "metrics": {"roc_auc": roc_auc},
        "gates": {"quality": "passed", "fairness": "passed", "promotable": True},
    }


def _model_plan(spec: api_model.ModelSpec, status: Json, annotations: Json, now: str = NOW) -> Any:
    body = {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Model",
        "metadata": {
            "name": "credit",
            "namespace": "risk",
            "uid": "u",
            "generation": 1,
            "creationTimestamp": "2026-11-23T08:00:00Z",
            "annotations": annotations,
        },
        "spec": spec.to_wire(),
        "status": status,
    }
    return models.plan(body, spec, jobs=[], messages={}, verified={}, settings=SETTINGS, now=now)


def test_an_unchanged_pinned_dataset_is_nothing_to_retrain_and_no_job_runs() -> None:
    status = {"versions": [_version(1)], "aliases": {"champion": 1}}
    result = _model_plan(_spec(), status, {"mlsteward.io/retrain": "drift/watch/20261123T100000Z"})
    assert result.apply == [] and len(result.status["versions"]) == 1
    assert [e.reason for e in result.events] == ["NothingToRetrain"]
    assert result.status["retraining"]["lastRequest"] == "drift/watch/20261123T100000Z"
    again = _model_plan(_spec(), result.status, {"mlsteward.io/retrain": "drift/watch/20261123T100000Z"})
    assert again.events == [] and again.apply == []


def test_automatic_requests_respect_the_models_cooldown_and_cap_but_a_persons_request_runs() -> None:
    status = {
        "versions": [_version(1, dataset="0" * 64)],
        "aliases": {"champion": 1},
        "retraining": {"lastRetrainTime": "2026-11-23T09:59:00Z", "retrainsToday": 1},
    }
    refused = _model_plan(_spec(cooldown="1h"), status, {"mlsteward.io/retrain": "drift/w/1"})
    assert refused.apply == [] and refused.events[0].reason == "RetrainRefused"
    assert "cooldown" in refused.status["retraining"]["message"]
    capped = _model_plan(_spec(cooldown="1s", maxPerDay=1), status, {"mlsteward.io/retrain": "drift/w/2"})
    assert capped.apply == [] and "daily cap" in capped.status["retraining"]["message"]
    person = _model_plan(_spec(cooldown="1h"), status, {"mlsteward.io/retrain": "by-hand"})
    assert [c["kind"] for c in person.apply] == ["Job"]
    admitted = _model_plan(_spec(cooldown="1s"), status, {"mlsteward.io/retrain": "drift/w/3"})
    assert [c["kind"] for c in admitted.apply] == ["Job"]
    assert admitted.status["retraining"]["retrainsToday"] == 2


def test_a_schedule_asks_for_a_retrain_through_the_annotation() -> None:
    status = {"versions": [_version(1)], "aliases": {"champion": 1}}
    result = _model_plan(_spec(schedule="*/30 * * * *"), status, {})
    assert result.annotate == {"mlsteward.io/retrain": "schedule/20261123T100000Z"}
    assert result.requeue_after is not None and result.requeue_after <= 1800


def test_a_worse_challenger_is_rejected_and_the_champion_annotation_moves_the_champion() -> None:
    status = {
        "versions": [_version(1), _version(2, roc_auc=0.7), _version(3, roc_auc=0.81)],
        "aliases": {"champion": 1},
    }
    result = _model_plan(_spec(), status, {})
    by_number = {v["version"]: v for v in result.status["versions"]}
    assert by_number[2]["reason"] == "ChallengerRejected" and not by_number[2]["challenge"]["passed"]
    assert result.status["aliases"] == {"champion": 1, "challenger": 3}
    promoted = _model_plan(_spec(), result.status, {"mlsteward.io/champion": "3"})
    assert promoted.status["aliases"] == {"champion": 3}


def _monitor_plan(status: Json, drifting: bool, now: str = NOW, **actions: Any) -> Any:
    spec = {
        "deploymentRef": {"name": "serve"},
        "window": {"size": 5000, "minSamples": 1000},
        "drift": {"consecutiveWindows": 2},
        "actions": {"retrain": True, "cooldown": "1h", "maxRetrainsPerDay": 2, **actions},
    }
    summary = {"evaluation": {"rows": 4000, "state": "drift" if drifting else "ok", "drifting": drifting}}
    body = {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Monitor",
        "metadata": {"name": "watch", "namespace": "risk", "uid": "m", "generation": 1},
        "spec": spec,
        "status": status,
    }
    model = {"metadata": {"name": "credit", "namespace": "risk"}}
    return monitors.plan(
        body,
        api_monitor.MonitorSpec.model_validate(spec),
        target={"metadata": {"name": "serve"}},
        digest="a" * 64,
        model=model,
        summaries=[summary],
        settings=SETTINGS,
        now=now,
    )


def test_a_monitor_asks_for_a_retrain_after_n_breaching_evaluations_then_cools_down() -> None:
    first = _monitor_plan({}, True)
    assert first.patches == [] and first.status["breachingEvaluations"] == 1
    second = _monitor_plan(first.status, True)
    (ref, patch) = second.patches[0]
    assert ref["kind"] == "Model" and ref["metadata"]["name"] == "credit"
    assert patch["metadata"]["annotations"]["mlsteward.io/retrain"] == "drift/watch/20261123T100000Z"
    assert second.status["retrainRequestsToday"] == 1 and second.status["breachingEvaluations"] == 0
    storm = second.status
    for minute in range(1, 5):
        later = f"2026-11-23T10:0{minute}:00Z"
        result = _monitor_plan(storm, True, now=later)
        assert result.patches == []
        storm = {**storm, **result.status}
    assert any(
        e.reason == "RetrainThrottled"
        for e in _monitor_plan({**storm, "breachingEvaluations": 1}, True).events
    )
    calm = _monitor_plan({"breachingEvaluations": 1}, False)
    assert calm.status["breachingEvaluations"] == 0 and calm.patches == []
