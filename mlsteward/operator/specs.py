"""What the operator derives from a Model spec without I/O: its hash and its retrain request.

The spec hash is computed exactly as the trainer computes it (``mlsteward.training.specs``:
the sha256 of the canonical JSON of the fields that determine the artifact, defaults
included); a unit test keeps the two in step, since the operator may not import the trainer.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from mlsteward.api import model as api_model

HASHED_FIELDS = (
    "task",
    "dataset",
    "estimator",
    "split",
    "quality_gates",
    "fairness_gates",
    "protected_attributes",
    "parity",
    "card",
)
RETRAIN_ANNOTATION = "mlsteward.io/retrain"


def spec_hash(spec: api_model.ModelSpec) -> str:
    wire = spec.model_dump(mode="json", by_alias=True, include=set(HASHED_FIELDS))
    return hashlib.sha256(orjson.dumps(wire, option=orjson.OPT_SORT_KEYS)).hexdigest()


def retrain_token(body: dict[str, Any]) -> str | None:
    """The value of the ``mlsteward.io/retrain`` annotation: a new value asks for a new version."""
    value = (body.get("metadata", {}).get("annotations") or {}).get(RETRAIN_ANNOTATION)
    return str(value)[:128] if value else None
