"""The outcome object (contracts §3): one JSON line on stdout, the same under 4 KiB as the
pod's termination message, optionally a file."""

from __future__ import annotations

import math
import pathlib
import sys
from typing import Any

import orjson

from mlsteward.training import errors

MAX_TERMINATION_BYTES = 4096
_MESSAGE_LIMIT = 1500


def build(
    *,
    reason: errors.Reason | None,
    message: str,
    artifact: dict[str, str] | None = None,
    dataset_sha256: str | None = None,
    spec_hash: str | None = None,
    metrics: dict[str, float] | None = None,
    gates: dict[str, Any] | None = None,
    champion_metrics: dict[str, float] | None = None,
    champion_comparison: dict[str, Any] | None = None,
    reused: bool = False,
) -> dict[str, Any]:
    """The outcome document; ``champion_*`` only when the run scored a champion (--champion-artifact),
    ``reused`` only when it reused an earlier artifact instead of training (--reuse-artifact)."""
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3] + "..."
    document: dict[str, Any] = {
        "outcome": "succeeded" if artifact is not None else "failed",
        "reason": reason,
        "message": message,
        "artifact": artifact,
        "dataset_sha256": dataset_sha256,
        "spec_hash": spec_hash,
        "metrics": {k: v for k, v in (metrics or {}).items() if not math.isnan(v)},
        "gates": gates,
    }
    if reused:
        document["reused"] = True
    if champion_comparison is not None:
        document["champion_comparison"] = champion_comparison
        document["champion_metrics"] = (
            None
            if champion_metrics is None
            else {k: v for k, v in champion_metrics.items() if not math.isnan(v)}
        )
    return document


def encode(document: dict[str, Any]) -> bytes:
    data = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    if len(data) >= MAX_TERMINATION_BYTES:
        # Never exceed the kubelet's limit: keep the decision, shorten the words.
        slim = {**document, "message": document["message"][:200], "metrics": {}}
        if document.get("champion_comparison") is not None:
            slim["champion_metrics"] = None
            slim["champion_comparison"] = {**document["champion_comparison"], "same_holdout": False}
            slim["champion_comparison"]["reason"] = "figures dropped: the outcome exceeded 4 KiB"
        data = orjson.dumps(slim, option=orjson.OPT_SORT_KEYS)
    return data


def emit(
    document: dict[str, Any], output_json: pathlib.Path | None, termination_path: pathlib.Path | None
) -> None:
    line = encode(document)
    # The process's real stdout, whatever a library may have redirected sys.stdout to.
    stdout = sys.__stdout__ if sys.__stdout__ is not None else sys.stdout
    stdout.flush()
    stdout.buffer.write(line + b"\n")
    stdout.flush()
    for path in (output_json, termination_path):
        if path is None:
            continue
        try:
            path.write_bytes(line)
        except OSError as error:
            print(f"mlsteward train: cannot write the outcome to {path}: {error}", file=sys.stderr)
