"""Small pure parts: the spec hash (in step with the trainer's), outcomes, conditions, version
resolution, the /summary aggregation, and the work queue."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from mlsteward.api import model as api_model
from mlsteward.operator import conditions, handlers, kube, outcomes, specs
from mlsteward.operator.queue import Key, WorkQueue
from mlsteward.operator.reconcilers import deployments, monitors
from mlsteward.training import specs as training_specs

Json = dict[str, Any]


def _spec(**extra: Any) -> api_model.ModelSpec:
    return api_model.ModelSpec.model_validate(
        {
            "task": "classification",
            "dataset": {"uri": "/d.csv", "target": "y", "features": ["a"], "sha256": "d" * 64},
            "estimator": {"className": "LogisticRegression", "params": {"C": 2}},
            **extra,
        }
    )


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"resources": {"requests": {"cpu": "4"}}},
        {"card": {"intendedUse": "x"}},
        {"split": {"testFraction": 0.3}},
    ],
)
def test_the_operators_spec_hash_is_the_trainers(extra: Json) -> None:
    spec = _spec(**extra)
    assert specs.spec_hash(spec) == training_specs.spec_hash(spec)


def test_resources_do_not_change_the_spec_hash_but_the_estimator_does() -> None:
    base = specs.spec_hash(_spec())
    assert specs.spec_hash(_spec(resources={"requests": {"cpu": "4"}})) == base
    assert specs.spec_hash(_spec(estimator={"className": "LogisticRegression", "params": {"C": 3}})) != base


def test_an_outcome_is_checked_before_it_is_believed() -> None:
    good = {
        "outcome": "succeeded",
        "artifact": {"digest": "a" * 64, "uri": "file:///x"},
        "gates": {"quality": "passed", "fairness": "inconclusive", "promotable": False},
        "metrics": {"f1": 0.5},
        "dataset_sha256": "nope",
    }
    parsed = outcomes.parse("some log line\n" + json.dumps(good))
    assert parsed.succeeded and parsed.dataset_sha256 is None and parsed.gates == good["gates"]
    for bad, words in [
        ("", "no termination message"),
        ("[1]", "no 'outcome'"),
        (json.dumps({"outcome": "succeeded", "artifact": None}), "names no artifact"),
        (json.dumps({**good, "artifact": {"digest": "short", "uri": "x"}}), "sha256 digest"),
        (json.dumps({**good, "gates": {"quality": "meh"}}), "gates need"),
    ]:
        with pytest.raises(outcomes.OutcomeError, match=words):
            outcomes.parse(bad)


def test_unknown_reasons_fall_back_to_the_default() -> None:
    assert conditions.to_reason("GateFailed", conditions.Reason.JOB_FAILED) == conditions.Reason.GATE_FAILED
    assert conditions.to_reason("SomethingNew", conditions.Reason.JOB_FAILED) == conditions.Reason.JOB_FAILED


def _model_with_versions() -> Json:
    def v(number: int, promotable: bool, phase: str = "Succeeded") -> Json:
        return {
            "version": number,
            "phase": phase,
            "artifact": {"digest": f"{number:064x}", "uri": "file:///x"},
            "gates": {"quality": "passed", "fairness": "passed", "promotable": promotable},
        }

    return {
        "spec": {},
        "status": {
            "versions": [v(1, True), v(2, False), v(3, True), v(4, True, "Failed")],
            "aliases": {"champion": 1, "challenger": 3},
        },
    }


@pytest.mark.parametrize(
    ("version", "alias", "expected"),
    [(None, None, 1), (None, "champion", 1), (None, "challenger", 3), (None, "latest", 3), (3, None, 3)],
)
def test_a_reference_resolves_to_a_promotable_version(
    version: int | None, alias: str | None, expected: int
) -> None:
    target, why = deployments.resolve(_model_with_versions(), version, alias)
    assert target is not None and target.version == expected and why == ""


@pytest.mark.parametrize("version", [2, 4, 9])
def test_a_pinned_version_that_cannot_serve_does_not_resolve(version: int) -> None:
    target, why = deployments.resolve(_model_with_versions(), version, None)
    assert target is None and f"version {version}" in why
    assert deployments.resolve(None, None, None) == (None, "the Model does not exist")


def _summary(rows: int, state: str, income: float) -> Json:
    return {
        "schema": monitors.SUMMARY_SCHEMA,
        "evaluation": {
            "rows": rows,
            "state": state,
            "drifting": state == "drift",
            "driftingFeatures": int(state == "drift"),
            "consecutiveBreaches": int(state == "drift"),
            "features": [
                {"name": "income", "test": "psi", "score": income, "threshold": 0.1, "state": state},
                {"name": "purpose", "test": "jensen_shannon", "score": None, "threshold": 0.1, "state": "ok"},
            ],
        },
        "performance": {"breached": False},
        "fairness": [{"attribute": "sex", "breached": state == "drift"}],
    }


def test_summaries_of_several_pods_sum_rows_and_keep_each_features_worst_score() -> None:
    combined = monitors.summarize([_summary(100, "ok", 0.05), _summary(200, "drift", 0.3), {"window": {}}])
    assert combined["rows"] == 300 and combined["drifting"] and combined["evaluated"]
    assert combined["features"] == [
        {"name": "income", "test": "psi", "score": 0.3, "threshold": 0.1, "drifting": True}
    ], "a feature without a finite score is left out"
    assert combined["degraded"] == ["fairness breached for sex"]


def test_a_window_below_its_minimum_is_not_an_evaluation() -> None:
    combined = monitors.summarize([{"evaluation": None, "window": {"currentPaneRows": 42}}])
    assert combined["rows"] == 42 and not combined["evaluated"] and not combined["drifting"]


def test_the_queue_runs_a_key_once_per_burst_and_again_when_added_while_running() -> None:
    calls: list[Key] = []
    gate = asyncio.Event()

    async def reconcile(key: Key) -> float | None:
        calls.append(key)
        if len(calls) == 1:
            await gate.wait()
        return None

    async def scenario() -> None:
        queue = WorkQueue(reconcile, workers=4)
        task = asyncio.create_task(queue.run())
        key = ("Model", "ns", "a")
        for _ in range(5):
            queue.add(key)
        await asyncio.sleep(0.05)
        queue.add(key)  # while running: once more afterwards
        queue.add(key)
        gate.set()
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(scenario())
    assert calls == [("Model", "ns", "a")] * 2


def test_the_queue_retries_a_failing_key_with_backoff() -> None:
    attempts: list[float] = []

    async def reconcile(key: Key) -> float | None:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) < 3:
            raise RuntimeError("API server away")
        return None

    async def scenario() -> None:
        queue = WorkQueue(reconcile, workers=1)
        task = asyncio.create_task(queue.run())
        queue.add(("Model", "ns", "a"))
        await asyncio.sleep(2.0)
        task.cancel()

    asyncio.run(scenario())
    assert len(attempts) == 3
    assert attempts[2] - attempts[1] > attempts[1] - attempts[0] >= 0.4


def test_the_reference_index_follows_changes_deletions_and_namespaces() -> None:
    index = handlers.ReferenceIndex()
    index.set("a", "serve", "credit")
    index.set("b", "serve", "credit")
    index.set("a", "shadow", "credit")
    assert index.referrers("a", "credit") == ["serve", "shadow"]
    index.set("a", "serve", "fraud")  # the reference changed target
    assert index.referrers("a", "credit") == ["shadow"] and index.referrers("a", "fraud") == ["serve"]
    index.set("a", "shadow", None)  # deleted
    assert index.referrers("a", "credit") == [] and index.referrers("b", "credit") == ["serve"]


def test_a_running_jobs_progress_does_not_wake_its_model_but_finishing_does() -> None:
    running = {"kind": "Job", "status": {"active": 1}}
    complete = {"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert not handlers._relevant("MODIFIED", running)
    assert handlers._relevant("MODIFIED", complete)
    assert handlers._relevant("DELETED", running) and handlers._relevant(None, running)
    assert handlers._relevant("MODIFIED", {"kind": "Deployment", "status": {}})


def test_the_client_recognises_the_echo_of_its_own_last_write() -> None:
    async def login() -> Any:
        raise AssertionError("no request in this test")

    client = kube.Client(login)
    client._remember({"metadata": {"uid": "u1", "resourceVersion": "10"}})
    assert client.is_own_write({"metadata": {"uid": "u1", "resourceVersion": "10"}})
    assert not client.is_own_write({"metadata": {"uid": "u1", "resourceVersion": "11"}})
    client.forget({"metadata": {"uid": "u1"}})
    assert not client.is_own_write({"metadata": {"uid": "u1", "resourceVersion": "10"}})
