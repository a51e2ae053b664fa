"""The Model reconciler's pure plan: versions, adoption after a crash, outcomes, cache, aliases."""

from __future__ import annotations

import copy
import json
from typing import Any

from mlsteward.api import model as api_model
from mlsteward.operator import settings as settings_module
from mlsteward.operator import specs
from mlsteward.operator.builders import training
from mlsteward.operator.reconcilers import models

SETTINGS = settings_module.Settings()
NOW = "2026-11-23T10:00:00Z"
Json = dict[str, Any]


def spec(pinned: str | None = None) -> api_model.ModelSpec:
    dataset: Json = {"uri": "/data/x.csv", "target": "y", "features": ["a", "b"]}
    if pinned:
        dataset["sha256"] = pinned
    return api_model.ModelSpec.model_validate(
        {"task": "classification", "dataset": dataset, "estimator": {"className": "LogisticRegression"}}
    )


def body(generation: int = 1, status: Json | None = None, annotations: Json | None = None) -> Json:
    return {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Model",
        "metadata": {
            "name": "credit",
            "namespace": "risk",
            "uid": "uid-1",
            "generation": generation,
            "resourceVersion": "7",
            "annotations": annotations or {},
        },
        "spec": spec().to_wire(),
        "status": status or {},
    }


def job(version: int, generation: int = 1, finished: str | None = None) -> Json:
    built = training.build_job(
        spec(), {"kind": "Model", "name": "credit", "namespace": "risk", "uid": "uid-1"}, version,
        generation=generation, retrain_token=None, spec_hash="e" * 64, settings=SETTINGS,
    )  # fmt: skip
    built["metadata"]["creationTimestamp"] = "2026-11-23T09:00:00Z"
    if finished:
        built["status"] = {
            "conditions": [{"type": finished, "status": "True", "reason": "X", "message": "m"}]
        }
    return built


def outcome(promotable: bool = True, digest: str = "a" * 64) -> str:
    return json.dumps(
        {
            "outcome": "succeeded",
            "reason": None if promotable else "GateFailed",
            "message": "done",
            "artifact": {"digest": digest, "uri": "file:///store/x"},
            "dataset_sha256": "d" * 64,
            "spec_hash": "e" * 64,
            "metrics": {"roc_auc": 0.8, "nested": {"x": 1}, "flag": True},
            "gates": {
                "quality": "passed" if promotable else "failed",
                "fairness": "passed",
                "promotable": promotable,
            },
        }
    )


def plan(b: Json, jobs: list[Json] | None = None, messages: Json | None = None, **kw: Any) -> Any:
    return models.plan(
        b,
        kw.pop("model_spec", spec()),
        jobs=jobs or [],
        messages=messages or {},
        verified=kw.pop("verified", {}),
        settings=SETTINGS,
        now=NOW,
    )


def conditions(status: Json) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_a_new_model_starts_version_1_with_one_job_and_is_not_ready() -> None:
    result = plan(body())
    [applied] = result.apply
    assert applied["kind"] == "Job" and applied["metadata"]["name"] == "credit-v1"
    assert result.status["latestVersion"] == 1 and result.status["phase"] == "Training"
    [v1] = result.status["versions"]
    assert (v1["phase"], v1["generation"], v1["jobName"]) == ("Training", 1, "credit-v1")
    assert conditions(result.status) == {
        "Ready": ("False", "Training"),
        "Reconciling": ("True", "Training"),
        "Stalled": ("False", "Reconciled"),
    }
    assert all(c["observedGeneration"] == 1 for c in result.status["conditions"])
    assert [e.reason for e in result.events] == ["TrainingStarted"]


def test_planning_again_with_the_job_running_changes_nothing() -> None:
    first = plan(body())
    again = plan(body(status=first.status), jobs=[job(1)])
    assert again.apply == [] and again.events == []
    assert again.status == first.status


def test_a_job_created_before_a_crash_is_adopted_not_duplicated() -> None:
    # The operator created credit-v1 and died before writing status: status is empty.
    result = plan(body(), jobs=[job(1)])
    assert result.apply == []
    [v1] = result.status["versions"]
    assert (v1["version"], v1["phase"], v1["jobName"]) == (1, "Training", "credit-v1")


def test_an_adopted_job_of_an_older_generation_is_finished_before_the_next_version_starts() -> None:
    result = plan(body(generation=2), jobs=[job(1, generation=1)])
    assert result.apply == [], "one version trains at a time"
    done = plan(
        body(generation=2, status=result.status),
        jobs=[job(1, generation=1, finished="Complete")],
        messages={"credit-v1": outcome()},
    )
    assert [a["metadata"]["name"] for a in done.apply] == ["credit-v2"]
    assert [v["phase"] for v in done.status["versions"]] == ["Succeeded", "Training"]


def test_a_successful_outcome_makes_a_ready_champion_with_its_lineage() -> None:
    started = plan(body())
    result = plan(
        body(status=started.status), jobs=[job(1, finished="Complete")], messages={"credit-v1": outcome()}
    )
    [v1] = result.status["versions"]
    assert v1["phase"] == "Succeeded" and v1["artifact"]["digest"] == "a" * 64
    assert v1["metrics"] == {"roc_auc": 0.8}, "non-numeric metrics are dropped"
    assert result.status["aliases"] == {"champion": 1}
    assert conditions(result.status)["Ready"] == ("True", "VersionReady")
    assert {e.reason for e in result.events} == {"VersionSucceeded", "ChampionSet"}


def test_a_completed_job_without_an_outcome_fails_the_version_clearly() -> None:
    started = plan(body())
    result = plan(
        body(status=started.status), jobs=[job(1, finished="Complete")], messages={"credit-v1": None}
    )
    [v1] = result.status["versions"]
    assert v1["phase"] == "Failed" and v1["reason"] == "OutcomeMissing"
    assert conditions(result.status)["Stalled"] == ("True", "OutcomeMissing")
    assert result.status["phase"] == "Failed"


def test_a_garbled_outcome_fails_the_version_as_invalid() -> None:
    started = plan(body())
    result = plan(
        body(status=started.status), jobs=[job(1, finished="Complete")], messages={"credit-v1": "{oops"}
    )
    assert result.status["versions"][0]["reason"] == "OutcomeInvalid"


def test_a_job_past_its_deadline_fails_the_version_as_such() -> None:
    started = plan(body())
    failed = job(1, finished="Failed")
    failed["status"]["conditions"][0]["reason"] = "DeadlineExceeded"
    result = plan(body(status=started.status), jobs=[failed], messages={"credit-v1": None})
    assert result.status["versions"][0]["reason"] == "DeadlineExceeded"


def test_a_failing_new_version_keeps_the_champion_and_stalls_with_the_trainers_reason() -> None:
    v1 = plan(body(), jobs=[job(1, finished="Complete")], messages={"credit-v1": outcome()})
    v1 = plan(body(status=v1.status), jobs=[job(1, finished="Complete")], messages={"credit-v1": outcome()})
    v2 = plan(body(generation=2, status=v1.status), jobs=[job(1, finished="Complete")])
    assert [a["metadata"]["name"] for a in v2.apply] == ["credit-v2"]
    bad = json.dumps({"outcome": "failed", "reason": "DataInvalid", "message": "column income missing"})
    result = plan(
        body(generation=2, status=v2.status),
        jobs=[job(1, finished="Complete"), job(2, 2, finished="Failed")],
        messages={"credit-v2": bad},
    )
    assert result.status["versions"][1]["reason"] == "DataInvalid"
    assert conditions(result.status)["Ready"] == ("True", "VersionReady")
    assert conditions(result.status)["Stalled"] == ("True", "DataInvalid")
    assert result.status["aliases"] == {"champion": 1}


def test_a_store_failure_reaches_the_version_and_the_stalled_condition_with_its_own_reason() -> None:
    started = plan(body())
    text = "cannot write the artifact to s3://models: s3://models/...: the bucket does not exist"
    for reason in (
        "StoreBucketMissing",
        "StoreCredentialsRejected",
        "StoreUnreachable",
        "ArtifactDigestMismatch",
    ):
        failed = json.dumps({"outcome": "failed", "reason": reason, "message": text})
        result = plan(
            body(status=started.status), jobs=[job(1, finished="Failed")], messages={"credit-v1": failed}
        )
        [v1] = result.status["versions"]
        assert (v1["phase"], v1["reason"], v1["message"]) == ("Failed", reason, text)
        assert conditions(result.status)["Stalled"] == ("True", reason)
        [event] = result.events
        assert event.reason == reason and text in event.message


def test_a_gate_failure_is_kept_for_audit_but_never_promoted() -> None:
    started = plan(body())
    result = plan(
        body(status=started.status),
        jobs=[job(1, finished="Complete")],
        messages={"credit-v1": outcome(promotable=False)},
    )
    [v1] = result.status["versions"]
    assert (v1["phase"], v1["reason"], v1["artifact"]["digest"]) == ("Failed", "GateFailed", "a" * 64)
    assert result.status["aliases"] == {}


def test_a_retrain_token_asks_for_a_new_version_once() -> None:
    done = plan(body(), jobs=[job(1, finished="Complete")], messages={"credit-v1": outcome()})
    done = plan(
        body(status=done.status), jobs=[job(1, finished="Complete")], messages={"credit-v1": outcome()}
    )
    annotated = body(status=done.status, annotations={specs.RETRAIN_ANNOTATION: "t1"})
    result = plan(annotated, jobs=[job(1, finished="Complete")])
    assert [a["metadata"]["name"] for a in result.apply] == ["credit-v2"]
    assert result.status["versions"][-1]["retrainToken"] == "t1"
    annotated["status"] = result.status
    assert plan(annotated, jobs=[job(1, finished="Complete"), job(2)]).apply == []


def _succeeded_pinned(pinned: str) -> Json:
    v1: Json = {
        "version": 1,
        "phase": "Succeeded",
        "generation": 1,
        "specHash": specs.spec_hash(spec(pinned)),
        "datasetSha256": pinned,
        "artifact": {"digest": "a" * 64, "uri": "file:///x"},
        "gates": {"quality": "passed", "fairness": "passed", "promotable": True},
        "metrics": {},
        "cached": False,
        "jobName": "credit-v1",
    }
    return {"latestVersion": 1, "versions": [v1], "aliases": {"champion": 1}}


def test_a_pinned_identical_spec_reuses_a_verified_artifact_without_a_job() -> None:
    pinned = "d" * 64
    b = body(status=_succeeded_pinned(pinned), annotations={specs.RETRAIN_ANNOTATION: "again"})
    assert models.cache_candidates(b, spec(pinned)) == ["a" * 64]
    result = plan(b, model_spec=spec(pinned), verified={"a" * 64: True})
    assert result.apply == []
    v2 = result.status["versions"][-1]
    assert (v2["version"], v2["phase"], v2["cached"]) == (2, "Succeeded", True)
    assert v2["artifact"]["digest"] == "a" * 64
    assert [e.reason for e in result.events] == ["CacheHit"]


def test_an_artifact_that_does_not_verify_is_never_reused() -> None:
    pinned = "d" * 64
    b = body(status=_succeeded_pinned(pinned), annotations={specs.RETRAIN_ANNOTATION: "again"})
    result = plan(b, model_spec=spec(pinned), verified={"a" * 64: False})
    assert [a["metadata"]["name"] for a in result.apply] == ["credit-v2"]


def test_an_unpinned_dataset_is_never_a_cache_candidate() -> None:
    status = _succeeded_pinned("d" * 64)
    b = body(status=status, annotations={specs.RETRAIN_ANNOTATION: "again"})
    assert models.cache_candidates(b, spec(None)) == []
    assert plan(b, verified={"a" * 64: True}).apply != []


def test_the_history_is_bounded_and_keeps_the_champion() -> None:
    status = _succeeded_pinned("d" * 64)
    for number in range(2, 26):
        extra = copy.deepcopy(status["versions"][0])
        extra.update(version=number, generation=number)
        status["versions"].append(extra)
    result = plan(body(generation=30, status=status))
    numbers = [v["version"] for v in result.status["versions"]]
    assert len(numbers) == models.MAX_VERSIONS and 1 in numbers and numbers[-1] == 26
    assert result.status["latestVersion"] == 26


def test_last_transition_time_moves_only_when_a_condition_changes() -> None:
    first = plan(body())
    later = models.plan(
        body(status=first.status), spec(), jobs=[job(1)], messages={}, verified={}, settings=SETTINGS,
        now="2026-11-23T11:00:00Z",
    )  # fmt: skip
    assert [c["lastTransitionTime"] for c in later.status["conditions"]] == [NOW, NOW, NOW]


def test_a_pass_reads_the_training_jobs_and_the_next_versions_job_by_name() -> None:
    assert models.jobs_to_read(body()) == ["credit-v1"]
    started = plan(body())
    assert models.jobs_to_read(body(status=started.status)) == ["credit-v1", "credit-v2"]
    done = plan(
        body(status=started.status), jobs=[job(1, finished="Complete")], messages={"credit-v1": outcome()}
    )
    assert models.jobs_to_read(body(status=done.status)) == ["credit-v2"]


def test_the_next_versions_job_scores_the_champion_and_its_figures_reach_the_challenge() -> None:
    [v1_job] = plan(body()).apply
    assert "--champion-artifact" not in v1_job["spec"]["template"]["spec"]["containers"][0]["command"]
    done = plan(body(), jobs=[job(1, finished="Complete")], messages={"credit-v1": outcome()})
    done = plan(
        body(status=done.status), jobs=[job(1, finished="Complete")], messages={"credit-v1": outcome()}
    )
    annotated = body(status=done.status, annotations={specs.RETRAIN_ANNOTATION: "t1"})
    [v2_job] = plan(annotated, jobs=[job(1, finished="Complete")]).apply
    command = v2_job["spec"]["template"]["spec"]["containers"][0]["command"]
    at = command.index("--champion-artifact")
    assert command[at : at + 4] == [
        "--champion-artifact",
        command[command.index("--store") + 1],
        "--champion-digest",
        "a" * 64,
    ]
    # v2's outcome: the champion scored lower on v2's holdout than it recorded on its own
    document = json.loads(outcome(digest="b" * 64))
    document["metrics"] = {"roc_auc": 0.75}
    document["champion_metrics"] = {"roc_auc": 0.74}
    document["champion_comparison"] = {"digest": "a" * 64, "same_holdout": True, "reason": None}
    annotated["status"] = plan(annotated, jobs=[job(1, finished="Complete")]).status
    result = plan(
        annotated,
        jobs=[job(1, finished="Complete"), job(2, finished="Complete")],
        messages={"credit-v2": json.dumps(document)},
    )
    v2 = result.status["versions"][-1]
    assert v2["championComparison"] == {
        "digest": "a" * 64, "sameHoldout": True, "reason": None, "metrics": {"roc_auc": 0.74}
    }  # fmt: skip
    assert v2["challenge"]["passed"] and v2["challenge"]["sameHoldout"], v2["challenge"]
    assert "the champion scored on this version's holdout" in v2["challenge"]["message"]
    api_model.ModelVersion.model_validate(v2)  # the status schema admits the record
