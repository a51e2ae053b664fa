"""``--champion-artifact``: the current champion scored on this run's own holdout.

The relative challenger gates (docs/rollout.md §2) need both versions' figures on the same
rows. After drift the two versions learned from different data, so their recorded holdout
metrics are not comparable; this module runs the champion's ONNX model (ONNX Runtime only, never
a pickle) on the challenger's holdout and computes the same metric names and the per-sensitive-
column fairness gaps (``fairness.<column>.<gap>``) for both models. The champion's artifact is
verified against its digest before any file is used. When the champion cannot be compared (its
features, task or classes differ from this spec's), the comparison records why instead.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tempfile
from typing import Any

import numpy as np
import orjson
import pandas as pd

from mlsteward.api import model as api_model
from mlsteward.store import artifacts, stores
from mlsteward.store.errors import StoreError
from mlsteward.training import conversion, errors, fairness, metrics

FAIRNESS_GAPS = ("demographic_parity_difference", "equalized_odds_difference")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The champion on this holdout: its metrics, or the reason there are none."""

    digest: str
    champion_metrics: dict[str, float] | None
    challenger_fairness: dict[str, float]
    reason: str | None = None

    def outcome_fields(self) -> dict[str, Any]:
        """``champion_metrics`` and ``champion_comparison`` of the outcome (contracts §3)."""
        return {
            "champion_metrics": self.champion_metrics,
            "champion_comparison": {
                "digest": self.digest,
                "same_holdout": self.champion_metrics is not None,
                "reason": self.reason,
            },
        }


@dataclasses.dataclass(frozen=True)
class ChampionModel:
    digest: str
    model_bytes: bytes
    schema: dict[str, Any]


def load(location: str, digest: str, cache_dir: pathlib.Path) -> ChampionModel:
    """The champion's ONNX model and schema, every byte verified against ``digest``.

    ``location``: a store (directory, ``file://``, ``s3://bucket/prefix``) holding the artifact,
    or the artifact's own URI (``.../artifacts/sha256/<digest>``), whose digest must match.
    """
    try:
        if "/artifacts/sha256/" in location:
            store_location, named = stores.split_artifact_uri(location)
            if named != digest:
                raise errors.InternalError(f"the artifact URI names sha256:{named}, not the champion digest")
        else:
            store_location = (
                location
                if location.startswith(("s3://", "file://"))
                else str(pathlib.Path(location).resolve())
            )
        verified = stores.open_store(store_location).fetch(digest, cache_dir)
        model_bytes = verified.read("model.onnx")
        schema = orjson.loads(verified.read("schema.json"))
    except (StoreError, artifacts.ArtifactError, orjson.JSONDecodeError, OSError) as error:
        raise errors.InternalError(f"cannot use the champion artifact sha256:{digest}: {error}") from error
    if not isinstance(schema, dict):
        raise errors.InternalError(f"the champion artifact sha256:{digest} has no schema object")
    return ChampionModel(digest=digest, model_bytes=model_bytes, schema=schema)


def incompatibility(schema: dict[str, Any], spec: api_model.ModelSpec, classes: Any) -> str | None:
    """Why the champion cannot score this run's holdout (schema change), or None."""
    categorical = set(spec.dataset.categorical)
    ours = [
        {"name": f, "kind": "categorical" if f in categorical else "numeric"} for f in spec.dataset.features
    ]
    theirs = schema.get("features")
    if schema.get("task") != spec.task:
        return f"the champion's task is {schema.get('task')!r}, this version's {spec.task!r}"
    if theirs != ours:
        names = [f.get("name") for f in theirs] if isinstance(theirs, list) else theirs
        return f"the champion's features {names} differ from this version's {list(spec.dataset.features)}"
    our_classes = [str(c) for c in classes] if classes is not None else None
    if schema.get("classes") != our_classes:
        return f"the champion's classes {schema.get('classes')} differ from this version's {our_classes}"
    return None


def fairness_gaps(
    spec: api_model.ModelSpec,
    test: pd.DataFrame,
    frame: pd.DataFrame,
    labels: np.ndarray[Any, Any] | None,
    classes: Any,
) -> dict[str, float]:
    """``fairness.<column>.<gap>`` of one model's holdout labels (binary classification only)."""
    if spec.task != "classification" or classes is None or len(classes) != 2 or labels is None:
        return {}
    class_array = np.asarray(classes)
    y_pos = metrics.class_codes(test[spec.dataset.target].to_numpy(), class_array) == 1
    pred_pos = metrics.class_codes(labels, class_array) == 1
    gaps: dict[str, float] = {}
    for column in spec.dataset.sensitive:
        if column not in frame.columns:
            continue
        groups = fairness.group_labels(test[column], reference=frame[column])
        report = fairness.column_report(groups, y_pos, pred_pos, spec.fairness_gates)
        for gap in FAIRNESS_GAPS:
            if report.get(gap) is not None:
                gaps[f"fairness.{column}.{gap}"] = float(report[gap])
    return gaps


def compare(
    location: str,
    digest: str,
    *,
    spec: api_model.ModelSpec,
    test: pd.DataFrame,
    frame: pd.DataFrame,
    served: conversion.Predictions,
    classes: Any,
) -> Comparison:
    """The champion at ``location`` scored on ``test``, this run's holdout."""
    challenger_fairness = fairness_gaps(spec, test, frame, served.labels, classes)
    # An unusable champion never fails the training run: the comparison records why instead.
    try:
        with tempfile.TemporaryDirectory(prefix="champion-") as cache:
            champion = load(location, digest, pathlib.Path(cache))
    except errors.InternalError as error:
        return Comparison(digest, None, challenger_fairness, f"not comparable: {error.message}")
    reason = incompatibility(champion.schema, spec, classes)
    if reason is not None:
        return Comparison(digest, None, challenger_fairness, f"not comparable: {reason}")
    features, categorical = list(spec.dataset.features), list(spec.dataset.categorical)
    predicted = conversion.predict_onnx(
        champion.model_bytes, conversion.feeds(test, features, categorical), spec.task
    )
    y_true = test[spec.dataset.target].to_numpy()
    if spec.task == "classification":
        assert predicted.labels is not None
        scored = metrics.classification(y_true, predicted.labels, predicted.values, np.asarray(classes))
    else:
        scored = metrics.regression(y_true, predicted.values)
    scored = {k: float(v) for k, v in scored.items() if not np.isnan(v)}
    scored.update(fairness_gaps(spec, test, frame, predicted.labels, classes))
    return Comparison(digest, scored, challenger_fairness)
