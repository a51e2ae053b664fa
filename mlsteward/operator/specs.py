"""What the operator derives from a Model spec without I/O: its hash and its retrain request.

The spec hash is the API's (``mlsteward.api.model.spec_hash``), the same function the trainer
records in the lineage, so the training cache compares like with like.
"""

from __future__ import annotations

from typing import Any

from mlsteward.api import model as api_model

HASHED_FIELDS = api_model.HASHED_FIELDS
RETRAIN_ANNOTATION = "mlsteward.io/retrain"


def spec_hash(spec: api_model.ModelSpec) -> str:
    return api_model.spec_hash(spec)


def retrain_token(body: dict[str, Any]) -> str | None:
    """The value of the ``mlsteward.io/retrain`` annotation: a new value asks for a new version."""
    value = (body.get("metadata", {}).get("annotations") or {}).get(RETRAIN_ANNOTATION)
    return str(value)[:128] if value else None


def duration_seconds(duration: str) -> float:
    """A Go-style duration as the API accepts it (``30s``, ``1m``, ``1h30m``) in seconds."""
    total, number = 0.0, ""
    for char in duration:
        if char.isdigit():
            number += char
        else:
            total += int(number or 0) * {"s": 1, "m": 60, "h": 3600}[char]
            number = ""
    return total
