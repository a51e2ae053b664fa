"""The Model plan keeps versions with empty required documentation (spec.card.required) from promotion."""

from __future__ import annotations

import json
from typing import Any

from mlsteward.api import model as api_model
from mlsteward.operator import settings as settings_module
from mlsteward.operator.reconcilers import models

SETTINGS = settings_module.Settings()
NOW = "2026-12-07T10:00:00Z"
Json = dict[str, Any]


def spec(card: Json) -> api_model.ModelSpec:
    return api_model.ModelSpec.model_validate(
        {
            "task": "classification",
            "dataset": {"uri": "/data/x.csv", "target": "y", "features": ["a", "b"]},
            "estimator": {"className": "LogisticRegression"},
            "card": card,
        }
    )


def body(model_spec: api_model.ModelSpec, generation: int = 1, status: Json | None = None) -> Json:
    return {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "credit", "namespace": "risk", "uid": "uid-1", "generation": generation},
        "spec": model_spec.to_wire(),
        "status": status or {},
    }


def finished(job: Json) -> Json:
    job["metadata"]["creationTimestamp"] = "2026-12-07T09:00:00Z"
    job["status"] = {"conditions": [{"type": "Complete", "status": "True", "reason": "X", "message": "m"}]}
    return job


def outcome(digest: str) -> str:
    return json.dumps(
        {
            "outcome": "succeeded",
            "reason": None,
            "message": "done",
            "artifact": {"digest": digest, "uri": f"file:///store/artifacts/sha256/{digest}"},
            "dataset_sha256": "d" * 64,
            "spec_hash": "e" * 64,
            "metrics": {"roc_auc": 0.8},
            "gates": {"quality": "passed", "fairness": "passed", "promotable": True},
        }
    )


def train(model_spec: api_model.ModelSpec, generation: int, status: Json, digest: str) -> Json:
    """Plan a new version for ``generation``, then plan again with its Job finished; the status."""
    started = models.plan(
        body(model_spec, generation, status), model_spec, jobs=[], messages={}, verified={},
        settings=SETTINGS, now=NOW,
    )  # fmt: skip
    [job] = started.apply
    done = models.plan(
        body(model_spec, generation, started.status), model_spec, jobs=[finished(job)],
        messages={job["metadata"]["name"]: outcome(digest)}, verified={}, settings=SETTINGS, now=NOW,
    )  # fmt: skip
    return done.status


def ready(status: Json) -> Json:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_a_version_trained_with_empty_required_fields_is_neither_champion_nor_ready() -> None:
    undocumented = spec(
        {
            "intendedUse": " ",
            "limitations": ["Synthetic data."],
            "required": ["intendedUse", "owners", "limitations"],
        }
    )

    status = train(undocumented, 1, {}, "a" * 64)

    [v1] = status["versions"]
    assert v1["phase"] == "Succeeded" and v1["gates"]["promotable"] is True
    assert v1["documentationMissing"] == ["card.intendedUse", "card.owners"]
    assert v1["reason"] == "DocumentationMissing"
    assert "spec.card.intendedUse, spec.card.owners" in v1["message"]
    assert status["aliases"] == {}
    assert ready(status)["status"] == "False"
    assert "spec.card.intendedUse, spec.card.owners" in ready(status)["message"]


def test_filling_the_required_fields_lets_the_next_version_become_champion() -> None:
    required = ["intendedUse", "owners"]
    status = train(spec({"required": required}), 1, {}, "a" * 64)
    documented = spec(
        {"intendedUse": "Rank loan applications.", "owners": ["risk-team"], "required": required}
    )

    status = train(documented, 2, status, "b" * 64)

    v1, v2 = status["versions"]
    assert "documentationMissing" not in v2 and v2.get("reason") is None
    assert v1["documentationMissing"] == ["card.intendedUse", "card.owners"]  # its own card decides
    assert status["aliases"] == {"champion": 2}
    assert ready(status)["status"] == "True"


def test_an_undocumented_newer_version_does_not_become_challenger() -> None:
    documented = spec(
        {"intendedUse": "Rank loan applications.", "owners": ["risk-team"], "required": ["owners"]}
    )
    status = train(documented, 1, {}, "a" * 64)
    emptied = spec({"intendedUse": "Rank loan applications.", "required": ["owners"]})

    status = train(emptied, 2, status, "b" * 64)

    assert status["aliases"] == {"champion": 1}
    assert status["versions"][1]["documentationMissing"] == ["card.owners"]


def test_without_required_fields_an_empty_card_does_not_block_promotion() -> None:
    status = train(spec({}), 1, {}, "a" * 64)

    assert "documentationMissing" not in status["versions"][0]
    assert status["aliases"] == {"champion": 1}
