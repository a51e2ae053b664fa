"""The trainer's outcome (docs/contracts.md §3), read from a training pod's termination message.

Pure: text in, a checked :class:`Outcome` (or an error sentence) out.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import orjson

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GATE_VALUES = {"passed", "failed", "inconclusive"}


@dataclasses.dataclass(frozen=True)
class Outcome:
    succeeded: bool
    reason: str | None
    message: str
    artifact: dict[str, str] | None
    dataset_sha256: str | None
    spec_hash: str | None
    metrics: dict[str, float]
    gates: dict[str, Any] | None
    champion_comparison: dict[str, Any] | None = None
    """Wire shape of ``ChampionComparison`` when the Job scored a champion."""
    reused: bool = False
    """The Job verified an earlier artifact in the store and reused it (``--reuse-artifact``)."""


class OutcomeError(ValueError):
    """The termination message is not a trainer outcome; the message says why."""


def _sha(value: Any) -> str | None:
    return value if isinstance(value, str) and _SHA256.match(value) else None


def parse(text: str | None) -> Outcome:
    """Parse and check one termination message; raise :class:`OutcomeError` when unusable."""
    if not text or not text.strip():
        raise OutcomeError("the pod left no termination message")
    try:
        document = orjson.loads(text.strip().splitlines()[-1])
    except (orjson.JSONDecodeError, IndexError) as error:
        raise OutcomeError(f"the termination message is not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("outcome") not in {"succeeded", "failed"}:
        raise OutcomeError("the termination message has no 'outcome' of succeeded or failed")
    artifact = document.get("artifact")
    if artifact is not None:
        if not (
            isinstance(artifact, dict)
            and _sha(artifact.get("digest"))
            and isinstance(artifact.get("uri"), str)
        ):
            raise OutcomeError("the outcome's artifact needs a sha256 digest and a uri")
        artifact = {"digest": artifact["digest"], "uri": artifact["uri"][:2048]}
    succeeded = document["outcome"] == "succeeded"
    if succeeded and artifact is None:
        raise OutcomeError("the outcome says succeeded but names no artifact")
    metrics = _figures(document.get("metrics"))
    gates = document.get("gates")
    if gates is not None:
        if not (
            isinstance(gates, dict)
            and gates.get("quality") in _GATE_VALUES
            and gates.get("fairness") in _GATE_VALUES
            and isinstance(gates.get("promotable"), bool)
        ):
            raise OutcomeError("the outcome's gates need quality, fairness and promotable")
        gates = {
            "quality": gates["quality"],
            "fairness": gates["fairness"],
            "promotable": gates["promotable"],
        }
    reason = document.get("reason")
    return Outcome(
        succeeded=succeeded,
        reason=reason if isinstance(reason, str) else None,
        message=str(document.get("message") or "")[:4096],
        artifact=artifact,
        dataset_sha256=_sha(document.get("dataset_sha256")),
        spec_hash=_sha(document.get("spec_hash")),
        metrics=metrics,
        gates=gates,
        champion_comparison=_champion_comparison(document),
        reused=succeeded and document.get("reused") is True,
    )


def _figures(value: Any) -> dict[str, float]:
    return {
        str(key)[:128]: float(figure)
        for key, figure in (value if isinstance(value, dict) else {}).items()
        if isinstance(figure, int | float) and not isinstance(figure, bool) and math.isfinite(figure)
    }


def _champion_comparison(document: dict[str, Any]) -> dict[str, Any] | None:
    """``champion_comparison`` and ``champion_metrics`` as one record; None when absent or unusable."""
    comparison = document.get("champion_comparison")
    if not isinstance(comparison, dict) or _sha(comparison.get("digest")) is None:
        return None
    figures = _figures(document.get("champion_metrics"))
    same = comparison.get("same_holdout") is True and bool(figures)
    reason = comparison.get("reason")
    return {
        "digest": comparison["digest"],
        "sameHoldout": same,
        "reason": reason[:1024] if isinstance(reason, str) else None,
        "metrics": figures if same else {},
    }
