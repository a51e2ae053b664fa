"""The Model reconciler against the real control plane, with the operator as a process under
its own ServiceAccount: training Jobs, outcomes, failures, re-runs and the cache."""

from __future__ import annotations

import json
import pathlib
import socket
import urllib.request
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from mlsteward.store import artifacts
from tests.cluster.operator.conftest import Kit, OperatorProcess

Json = dict[str, Any]
DIGEST_DATA = "d" * 64


def model(name: str, **spec: Any) -> Json:
    body: Json = {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "task": "classification",
            "dataset": {
                "uri": "/data/credit.csv",
                "target": "default",
                "features": ["income", "debt_ratio", "purpose"],
                "categorical": ["purpose"],
                "sensitive": ["sex"],
            },
            "estimator": {"className": "LogisticRegression", "params": {"C": 1.0}},
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
            "trainingDeadlineSeconds": 600,
        },
    }
    body["spec"].update(spec)
    return body


def outcome(digest: str = "a" * 64, *, promotable: bool = True, spec_hash: str = "c" * 64) -> Json:
    return {
        "outcome": "succeeded",
        "reason": None if promotable else "GateFailed",
        "message": "trained",
        "artifact": {"digest": digest, "uri": f"file:///var/lib/mlsteward/store/artifacts/sha256/{digest}"},
        "dataset_sha256": DIGEST_DATA,
        "spec_hash": spec_hash,
        "metrics": {"roc_auc": 0.81, "accuracy": 0.77},
        "gates": {
            "quality": "passed" if promotable else "failed",
            "fairness": "passed",
            "promotable": promotable,
        },
    }


def failed(reason: str, message: str) -> Json:
    return {
        "outcome": "failed",
        "reason": reason,
        "message": message,
        "artifact": None,
        "dataset_sha256": None,
        "spec_hash": None,
        "metrics": {},
        "gates": None,
    }


def jobs(kit: Kit, name: str) -> list[Json]:
    return kit.items("jobs", f"mlsteward.io/model={name}")


def versions(kit: Kit, name: str) -> list[Json]:
    result: list[Json] = kit.model_status(name).get("versions") or []
    return result


def version(kit: Kit, name: str, number: int, phase: str) -> Json | None:
    return next((v for v in versions(kit, name) if v["version"] == number and v["phase"] == phase), None)


def metrics_flags() -> tuple[list[str], int]:
    """Flags that start the operator's metrics server on a free port of 127.0.0.1, and the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    return ["--metrics-port", str(port), "--metrics-host", "127.0.0.1"], port


def training_runs(port: int) -> dict[tuple[str, str], float]:
    """The operator's training-run counters for the Model credit, scraped: (outcome, reason) -> count."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.labels["outcome"], sample.labels["reason"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mlsteward_operator_training_runs_total" and sample.labels["model"] == "credit"
    }


def condition(kit: Kit, name: str, type_: str) -> Json:
    found = next(c for c in kit.model_status(name).get("conditions", []) if c["type"] == type_)
    return dict(found)


def test_a_model_gets_one_training_job_that_runs_the_trainer_in_a_restricted_pod(
    kit: Kit, start_operator: Callable[..., OperatorProcess]
) -> None:
    start_operator()
    kit.apply(model("credit"))
    job = kit.wait_for("the training Job", lambda: kit.get("jobs", "credit-v1"))
    body = kit.get("models.mlsteward.io", "credit")
    assert body is not None
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Model",
        "credit",
        body["metadata"]["uid"],
        True,
    )
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 600
    assert spec["backoffLimit"] >= 0 and spec["ttlSecondsAfterFinished"] > 0
    pod_spec = spec["template"]["spec"]
    container = pod_spec["containers"][0]
    assert container["command"][:2] == ["mlsteward", "train"]
    flags = container["command"]
    assert flags[flags.index("--store") + 1] == "/var/lib/mlsteward/store"
    assert flags[flags.index("--termination-message-path") + 1] == "/dev/termination-log"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert json.loads(env["MLSTEWARD_MODEL_SPEC"])["estimator"]["className"] == "LogisticRegression"
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    claims = [
        v["persistentVolumeClaim"]["claimName"] for v in pod_spec["volumes"] if "persistentVolumeClaim" in v
    ]
    assert claims == ["mlsteward-artifacts"]
    # The restricted namespace admitted the pod: it exists.
    kit.wait_for("the training pod", lambda: kit.training_pod("credit-v1"))
    status = kit.wait_for(
        "version 1 in status", lambda: version(kit, "credit", 1, "Training") and kit.model_status("credit")
    )
    assert status["latestVersion"] == 1 and status["phase"] == "Training"
    assert condition(kit, "credit", "Reconciling")["status"] == "True"
    assert condition(kit, "credit", "Ready")["status"] == "False"
    assert len(jobs(kit, "credit")) == 1


def test_a_successful_outcome_becomes_a_ready_champion_version_and_kubectl_wait_sees_it(
    kit: Kit, start_operator: Callable[..., OperatorProcess]
) -> None:
    start_operator()
    kit.apply(model("credit"))
    kit.finish_training("credit-v1", outcome())
    kit.kubectl("wait", "models.mlsteward.io/credit", "--for=condition=Ready", "--timeout=90s")
    status = kit.model_status("credit")
    [v1] = status["versions"]
    assert v1["phase"] == "Succeeded" and v1["artifact"]["digest"] == "a" * 64
    assert v1["metrics"]["roc_auc"] == 0.81 and v1["gates"]["promotable"] is True
    assert v1["datasetSha256"] == DIGEST_DATA and v1["jobName"] == "credit-v1"
    assert status["aliases"] == {"champion": 1}
    assert status["observedGeneration"] == 1
    assert condition(kit, "credit", "Stalled")["status"] == "False"
    reasons = kit.wait_for(
        "the Events",
        lambda: (
            {e["reason"] for e in kit.events("credit")}
            >= {"TrainingStarted", "VersionSucceeded", "ChampionSet"}
            and {e["reason"] for e in kit.events("credit")}
        ),
    )
    assert "TrainingStarted" in reasons


def test_a_job_that_completes_without_an_outcome_is_a_failed_version_with_a_clear_reason(
    kit: Kit, start_operator: Callable[..., OperatorProcess]
) -> None:
    start_operator()
    kit.apply(model("credit"))
    kit.finish_training("credit-v1", None)
    failed_v1 = kit.wait_for("version 1 failed", lambda: version(kit, "credit", 1, "Failed"))
    assert failed_v1["reason"] == "OutcomeMissing"
    assert "no readable outcome" in failed_v1["message"]
    stalled = condition(kit, "credit", "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "OutcomeMissing"
    assert condition(kit, "credit", "Ready")["status"] == "False"
    assert kit.model_status("credit")["phase"] == "Failed"


def test_a_failed_version_surfaces_its_reason_and_the_previous_champion_stays(
    kit: Kit, start_operator: Callable[..., OperatorProcess]
) -> None:
    flags, port = metrics_flags()
    start_operator(*flags)
    kit.apply(model("credit"))
    kit.finish_training("credit-v1", outcome())
    kit.wait_for("version 1", lambda: version(kit, "credit", 1, "Succeeded"))
    kit.apply(model("credit", estimator={"className": "LogisticRegression", "params": {"C": 0.5}}))
    kit.wait_for("the Job of version 2", lambda: kit.get("jobs", "credit-v2"))
    kit.finish_training(
        "credit-v2", failed("PolicyViolation", "feature zip_code proxies race (ROC AUC 0.91)"), 2
    )
    v2 = kit.wait_for("version 2 failed", lambda: version(kit, "credit", 2, "Failed"))
    assert v2["reason"] == "PolicyViolation" and "zip_code" in v2["message"]
    stalled = condition(kit, "credit", "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "PolicyViolation"
    assert "version 1 stays the champion" in stalled["message"]
    assert condition(kit, "credit", "Ready")["status"] == "True"
    assert kit.model_status("credit")["aliases"] == {"champion": 1}
    assert kit.model_status("credit")["observedGeneration"] == 2
    # Counted once each, by the pass that wrote the transition, however often it reconciled.
    assert training_runs(port) == {("succeeded", ""): 1.0, ("failed", "PolicyViolation"): 1.0}


def test_a_gate_failure_keeps_the_artifact_for_audit_but_never_becomes_champion(
    kit: Kit, start_operator: Callable[..., OperatorProcess]
) -> None:
    start_operator()
    kit.apply(model("credit"))
    kit.finish_training("credit-v1", outcome(promotable=False))
    v1 = kit.wait_for("version 1 rejected", lambda: version(kit, "credit", 1, "Failed"))
    assert v1["reason"] == "GateFailed" and v1["artifact"]["digest"] == "a" * 64
    assert kit.model_status("credit").get("aliases", {}) == {}
    assert condition(kit, "credit", "Ready")["reason"] == "NoPromotableVersion"


def test_a_retrain_annotation_starts_a_new_version_and_a_pinned_identical_spec_reuses_the_artifact(
    kit: Kit, start_operator: Callable[..., OperatorProcess], tmp_path: pathlib.Path
) -> None:
    store_root = tmp_path / "stores"
    ref = artifacts.write_artifact(
        store_root / "mlsteward-artifacts", {"model.onnx": b"onnx", "lineage.json": b"{}"}
    )
    flags, port = metrics_flags()
    start_operator("--store-root", str(store_root), *flags)
    pinned = model("credit")
    pinned["spec"]["dataset"]["sha256"] = DIGEST_DATA
    kit.apply(pinned)
    job = kit.wait_for("the Job of version 1", lambda: kit.get("jobs", "credit-v1"))
    spec_hash = job["metadata"]["annotations"]["mlsteward.io/spec-hash"]
    kit.finish_training("credit-v1", outcome(ref.digest, spec_hash=spec_hash))
    kit.wait_for("version 1", lambda: version(kit, "credit", 1, "Succeeded"))
    kit.kubectl("annotate", "models.mlsteward.io", "credit", "mlsteward.io/retrain=first")
    v2 = kit.wait_for("version 2 from the cache", lambda: version(kit, "credit", 2, "Succeeded"))
    assert v2["cached"] is True and v2["artifact"]["digest"] == ref.digest and v2["retrainToken"] == "first"
    assert kit.get("jobs", "credit-v2") is None, "a cache hit must not run a Job"
    kit.wait_for("the CacheHit Event", lambda: any(e["reason"] == "CacheHit" for e in kit.events("credit")))
    assert training_runs(port) == {("succeeded", ""): 1.0, ("cached", ""): 1.0}
    # An artifact that no longer verifies is never reused: the next re-run trains.
    store = store_root / "mlsteward-artifacts"
    (artifacts.artifact_dir(store, ref.digest) / "model.onnx").write_bytes(b"tampered")
    kit.kubectl("annotate", "--overwrite", "models.mlsteward.io", "credit", "mlsteward.io/retrain=second")
    kit.wait_for("the Job of version 3", lambda: kit.get("jobs", "credit-v3"))
    assert version(kit, "credit", 3, "Training") is not None or kit.wait_for(
        "version 3 training", lambda: version(kit, "credit", 3, "Training")
    )


def test_an_unpinned_dataset_is_never_served_from_the_cache(
    kit: Kit, start_operator: Callable[..., OperatorProcess], tmp_path: pathlib.Path
) -> None:
    store_root = tmp_path / "stores"
    ref = artifacts.write_artifact(store_root / "mlsteward-artifacts", {"model.onnx": b"onnx"})
    start_operator("--store-root", str(store_root))
    kit.apply(model("credit"))
    job = kit.wait_for("the Job of version 1", lambda: kit.get("jobs", "credit-v1"))
    spec_hash = job["metadata"]["annotations"]["mlsteward.io/spec-hash"]
    kit.finish_training("credit-v1", outcome(ref.digest, spec_hash=spec_hash))
    kit.wait_for("version 1", lambda: version(kit, "credit", 1, "Succeeded"))
    kit.kubectl("annotate", "models.mlsteward.io", "credit", "mlsteward.io/retrain=again")
    kit.wait_for("the Job of version 2", lambda: kit.get("jobs", "credit-v2"))
    assert all(not v["cached"] for v in versions(kit, "credit"))
