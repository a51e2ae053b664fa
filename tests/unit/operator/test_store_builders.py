"""Builders with an S3 artifact store: settings as env, credentials only as Secret references."""

from __future__ import annotations

import json
from typing import Any

from mlsteward.api import deployment as api_deployment
from mlsteward.api import model as api_model
from mlsteward.operator import metrics, specs
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import common, monitoring, serving, training
from mlsteward.operator.reconcilers import models

OWNER = common.Owner(kind="Model", name="credit", namespace="risk", uid="uid-1")
SETTINGS = settings_module.Settings()
NOW = "2026-12-07T10:00:00Z"
S3 = {
    "bucket": "models",
    "prefix": "team-a",
    "endpoint": "http://minio.storage:9000",
    "region": "eu-west-1",
    "pathStyle": True,
    "credentialsSecretRef": {"name": "store-credentials"},
}


def _model(store: dict[str, Any]) -> api_model.ModelSpec:
    return api_model.ModelSpec.model_validate(
        {
            "task": "classification",
            "dataset": {"uri": "s3://data/x.csv", "target": "y", "features": ["a", "b"]},
            "estimator": {"className": "LogisticRegression"},
            "artifactStore": store,
        }
    )


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _assert_credentials_from_the_secret(container: dict[str, Any]) -> None:
    env = _env(container)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key] == {"secretKeyRef": {"name": "store-credentials", "key": key}}
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["MLSTEWARD_S3_ENDPOINT_URL"] == "http://minio.storage:9000"
    assert env["MLSTEWARD_S3_ADDRESSING_STYLE"] == "path"


def test_a_training_job_writes_to_the_bucket_with_credentials_from_the_secret() -> None:
    job = training.build_job(
        _model({"s3": S3}), OWNER, 1, generation=1, retrain_token=None, spec_hash="f" * 64, settings=SETTINGS
    )
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert _flag(container["command"], "--store") == "s3://models/team-a"
    _assert_credentials_from_the_secret(container)
    # No PVC: the trainer uploads from memory.
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert [m["name"] for m in container["volumeMounts"]] == ["tmp"]


def test_serving_pods_read_the_bucket_into_an_emptydir_cache() -> None:
    store = _model({"s3": {**S3, "prefix": "", "pathStyle": False}}).artifact_store
    spec = api_deployment.DeploymentSpec.model_validate({"modelRef": {"name": "credit"}})
    owner = common.Owner(kind="Deployment", name="serve", namespace="risk", uid="uid-2")
    built = serving.build_deployment(
        spec, owner, claim_name=store.claim_name, settings=SETTINGS, artifact_store=store
    )
    pod = built["spec"]["template"]["spec"]
    [server] = pod["containers"]
    assert _flag(server["command"], "--store") == "s3://models"
    assert _flag(server["command"], "--cache-dir") == common.CACHE_DIR
    assert _env(server)["MLSTEWARD_S3_ADDRESSING_STYLE"] == "virtual"
    assert {"name": common.CACHE_VOLUME, "emptyDir": {}} in pod["volumes"]
    assert {"name": common.CACHE_VOLUME, "mountPath": common.CACHE_DIR} in server["volumeMounts"]
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])


def test_no_manifest_carries_a_credential_value() -> None:
    job = training.build_job(
        _model({"s3": S3}), OWNER, 1, generation=1, retrain_token=None, spec_hash="f" * 64, settings=SETTINGS
    )
    text = json.dumps(job)
    assert "secretKeyRef" in text
    # Only references: no env entry for a credential has a literal value.
    for container in job["spec"]["template"]["spec"]["containers"]:
        for entry in container["env"]:
            if entry["name"].startswith("AWS_") and entry["name"] != "AWS_REGION":
                assert "value" not in entry


def test_without_s3_the_pvc_store_is_unchanged() -> None:
    job = training.build_job(
        _model({"claimName": "models"}),
        OWNER,
        1,
        generation=1,
        retrain_token=None,
        spec_hash="f" * 64,
        settings=SETTINGS,
    )
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert _flag(container["command"], "--store") == SETTINGS.store_mount_path
    assert not any(e["name"].startswith("AWS_") for e in container["env"])
    assert {
        "name": "artifact-store",
        "persistentVolumeClaim": {"claimName": "models", "readOnly": False},
    } in pod["volumes"]


def _cached_body(model: api_model.ModelSpec) -> dict[str, Any]:
    v1 = {
        "version": 1,
        "phase": "Succeeded",
        "generation": 1,
        "specHash": specs.spec_hash(model),
        "datasetSha256": model.dataset.sha256,
        "artifact": {"digest": "a" * 64, "uri": "s3://models/team-a/artifacts/sha256/" + "a" * 64},
        "gates": {"quality": "passed", "fairness": "passed", "promotable": True},
        "metrics": {},
        "cached": False,
        "jobName": "credit-v1",
    }
    return {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "credit", "namespace": "risk", "uid": "uid-1", "generation": 2},
        "spec": model.to_wire(),
        "status": {"latestVersion": 1, "versions": [v1], "aliases": {"champion": 1}},
    }


def _pinned(store: dict[str, Any]) -> api_model.ModelSpec:
    wire = _model(store).to_wire()
    wire["dataset"]["sha256"] = "d" * 64
    return api_model.ModelSpec.model_validate(wire)


def test_with_an_s3_store_the_training_job_checks_and_reuses_the_cached_artifact() -> None:
    """The operator cannot read the bucket: the Job verifies the candidate and reuses it."""
    model = _pinned({"s3": S3})
    result = models.plan(
        _cached_body(model),
        model,
        jobs=[],
        messages={},
        verified={},
        settings=SETTINGS,
        now="2026-12-07T10:00:00Z",
    )
    [job] = result.apply
    assert _flag(job["spec"]["template"]["spec"]["containers"][0]["command"], "--reuse-artifact") == "a" * 64


def test_a_reuse_the_training_job_confirmed_is_recorded_and_announced_as_a_cache_hit() -> None:
    model = _pinned({"s3": S3})
    started = models.plan(
        _cached_body(model), model, jobs=[], messages={}, verified={}, settings=SETTINGS, now=NOW
    )
    [job] = started.apply
    job["status"] = {"conditions": [{"type": "Complete", "status": "True", "reason": "X", "message": ""}]}
    reused = {
        "outcome": "succeeded",
        "reason": None,
        "message": f"reused the verified artifact sha256:{'a' * 64} of an earlier run; no training",
        "artifact": {"digest": "a" * 64, "uri": "s3://models/team-a/artifacts/sha256/" + "a" * 64},
        "dataset_sha256": "d" * 64,
        "spec_hash": specs.spec_hash(model),
        "metrics": {},
        "gates": {"quality": "passed", "fairness": "passed", "promotable": True},
        "reused": True,
    }
    body = {**_cached_body(model), "status": started.status}
    result = models.plan(
        body,
        model,
        jobs=[job],
        messages={job["metadata"]["name"]: json.dumps(reused)},
        verified={},
        settings=SETTINGS,
        now=NOW,
    )
    v2 = result.status["versions"][-1]
    assert (v2["version"], v2["phase"], v2["cached"]) == (2, "Succeeded", True)
    assert v2["artifact"]["digest"] == "a" * 64
    [event] = [e for e in result.events if e.reason == "CacheHit"]
    assert f"version 2 reuses version 1's verified artifact sha256:{'a' * 64}" in event.message
    assert "VersionSucceeded" not in {e.reason for e in result.events}
    assert metrics.training_transitions(started.status, result.status) == [("cached", "")]


def test_with_a_pvc_store_the_operator_verifies_the_cache_itself() -> None:
    model = _pinned({"claimName": "models"})
    result = models.plan(
        _cached_body(model),
        model,
        jobs=[],
        messages={},
        verified={},
        settings=SETTINGS,
        now="2026-12-07T10:00:00Z",
    )
    [job] = result.apply  # not verified by the operator: trains, and the Job is not asked to reuse
    assert "--reuse-artifact" not in job["spec"]["template"]["spec"]["containers"][0]["command"]


def test_the_monitor_sidecar_reads_the_profile_from_the_bucket() -> None:
    store = _model({"s3": S3}).artifact_store
    patch = monitoring.build_sidecar_patch(
        "serve", "risk", "watch", digest="c" * 64, settings=SETTINGS, artifact_store=store
    )
    sidecar = patch["spec"]["template"]["spec"]["containers"][1]
    assert (
        _flag(sidecar["command"], "--profile-artifact") == "s3://models/team-a/artifacts/sha256/" + "c" * 64
    )
    _assert_credentials_from_the_secret(sidecar)
    # The pod has no PVC for an S3 store: the sidecar must not mount one.
    assert all(m["name"] != "artifact-store" for m in sidecar["volumeMounts"])
