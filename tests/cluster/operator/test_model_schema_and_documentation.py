"""The operator resolves a shared feature schema from its ConfigMap into the training Job's spec,
and keeps a version whose required documentation is empty from becoming champion."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml

from mlsteward.api import model as api_model
from tests.cluster.operator.conftest import Kit, OperatorProcess

Json = dict[str, Any]
COLUMNS: list[Json] = [
    {"name": "default", "type": "integer", "allowedValues": ["0", "1"]},
    {"name": "income", "type": "number", "minimum": 0},
    {"name": "purpose", "type": "string"},
    {"name": "sex", "type": "string"},
]


def test_a_shared_schema_reaches_the_job_and_undocumented_versions_are_not_promoted(
    kit: Kit, start_operator: Callable[..., OperatorProcess]
) -> None:
    kit.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "credit-features"},
            "data": {"schema.yaml": yaml.safe_dump({"version": "7", "columns": COLUMNS})},
        }
    )
    spec: Json = {
        "task": "classification",
        "dataset": {
            "uri": "/data/credit.csv",
            "target": "default",
            "features": ["income", "purpose"],
            "categorical": ["purpose"],
            "sensitive": ["sex"],
        },
        "estimator": {"className": "LogisticRegression"},
        "schema": {"configMapRef": {"name": "credit-features"}},
        "card": {"intendedUse": "Rank applications.", "required": ["intendedUse", "owners"]},
    }
    start_operator()
    kit.apply(
        {"apiVersion": "mlsteward.io/v1alpha1", "kind": "Model", "metadata": {"name": "credit"}, "spec": spec}
    )

    job = kit.wait_for("the training Job", lambda: kit.get("jobs", "credit-v1"))
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    sent = api_model.ModelSpec.model_validate(json.loads(env["MLSTEWARD_MODEL_SPEC"]))
    assert sent.feature_schema is not None and sent.feature_schema.version == "7"
    assert [
        c.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
        for c in sent.feature_schema.columns or []
    ] == COLUMNS
    assert sent.feature_schema.config_map_ref is not None
    # The version's record follows its Job (the status write waits for a quiet work queue).
    [v1] = kit.wait_for("version 1 in status", lambda: kit.model_status("credit").get("versions"))
    assert v1["specHash"] == api_model.spec_hash(sent)  # the hash the trainer will record
    assert v1["documentationMissing"] == ["card.owners"]

    kit.finish_training(
        "credit-v1",
        {
            "outcome": "succeeded",
            "reason": None,
            "message": "trained",
            "artifact": {
                "digest": "a" * 64,
                "uri": "file:///var/lib/mlsteward/store/artifacts/sha256/" + "a" * 64,
            },
            "dataset_sha256": "d" * 64,
            "spec_hash": v1["specHash"],
            "metrics": {"roc_auc": 0.8},
            "gates": {"quality": "passed", "fairness": "passed", "promotable": True},
        },
    )

    def finished() -> Json | None:
        versions = kit.model_status("credit").get("versions") or []
        return versions[0] if versions and versions[0]["phase"] != "Training" else None

    done = kit.wait_for("version 1 to finish", finished)
    assert (done["phase"], done["reason"]) == ("Succeeded", "DocumentationMissing")
    assert "spec.card.owners" in done["message"]
    status = kit.model_status("credit")
    assert status.get("aliases") in ({}, None)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "spec.card.owners" in ready["message"]
