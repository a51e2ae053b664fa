"""The reference profile (docs/contracts.md §2) parsed into typed, validated columns.

Pure: takes the decoded JSON documents, returns frozen dataclasses, raises ``ProfileError``
with the offending path in the message. Reading the files (and verifying the artifact's
digest) is the sidecar's job, in ``references.py``.

Usage::

    reference = profiles.parse_reference(orjson.loads(profile_bytes), orjson.loads(schema_bytes))
    reference.features[0].name
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

PROFILE_SCHEMA = "mlsteward.io/profile/v1"
MAX_CATEGORIES = 50

Task = Literal["classification", "regression"]


class ProfileError(ValueError):
    """The profile or schema document does not follow docs/contracts.md §2."""


@dataclasses.dataclass(frozen=True)
class NumericReference:
    """A numeric column: quantile edges and counts ``[below, b1..bk, above, missing]``."""

    name: str
    edges: NDArray[np.float64]
    counts: NDArray[np.int64]
    mean: float
    std: float

    kind: Literal["numeric"] = "numeric"


@dataclasses.dataclass(frozen=True)
class CategoricalReference:
    """A categorical column: top categories and counts ``[c1..cn, other, unseen, missing]``."""

    name: str
    categories: tuple[str, ...]
    counts: NDArray[np.int64]

    kind: Literal["categorical"] = "categorical"

    @property
    def complete(self) -> bool:
        """True when ``categories`` lists every training value (the reference has no "other")."""
        return int(self.counts[-3]) == 0


ColumnReference = NumericReference | CategoricalReference


@dataclasses.dataclass(frozen=True)
class Reference:
    """Everything the monitor compares production with."""

    rows: int
    features: tuple[ColumnReference, ...]
    prediction_label: CategoricalReference | None
    prediction_score: NumericReference | None
    task: Task
    positive_class: str | None
    sensitive: tuple[str, ...]

    def feature(self, name: str) -> ColumnReference | None:
        for column in self.features:
            if column.name == name:
                return column
        return None


def parse_reference(profile: object, schema: object | None = None) -> Reference:
    """Validate ``profile.json`` (and ``schema.json`` when the artifact has one)."""
    if not isinstance(profile, Mapping):
        raise ProfileError("profile: expected a JSON object")
    if profile.get("schema") != PROFILE_SCHEMA:
        raise ProfileError(f"profile.schema: expected {PROFILE_SCHEMA!r}, got {profile.get('schema')!r}")
    rows = profile.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise ProfileError(f"profile.rows: expected a positive integer, got {rows!r}")
    raw_features = profile.get("features")
    if not isinstance(raw_features, Mapping) or not raw_features:
        raise ProfileError("profile.features: expected a non-empty object")
    features = tuple(
        _parse_column(str(name), body, f"profile.features.{name}") for name, body in raw_features.items()
    )
    prediction = profile.get("prediction")
    if not isinstance(prediction, Mapping):
        raise ProfileError("profile.prediction: expected an object with 'label' and 'score'")
    label = prediction.get("label")
    score = prediction.get("score")
    label_ref = None if label is None else _parse_column("label", label, "profile.prediction.label")
    score_ref = None if score is None else _parse_column("score", score, "profile.prediction.score")
    if label_ref is not None and not isinstance(label_ref, CategoricalReference):
        raise ProfileError("profile.prediction.label: expected a categorical summary")
    if score_ref is not None and not isinstance(score_ref, NumericReference):
        raise ProfileError("profile.prediction.score: expected a numeric summary")
    task, positive, sensitive = _parse_schema(schema, features, label_ref)
    return Reference(
        rows=rows,
        features=features,
        prediction_label=label_ref,
        prediction_score=score_ref,
        task=task,
        positive_class=positive,
        sensitive=sensitive,
    )


def _parse_schema(
    schema: object | None,
    features: tuple[ColumnReference, ...],
    label: CategoricalReference | None,
) -> tuple[Task, str | None, tuple[str, ...]]:
    if schema is None:
        # Without schema.json: a label summary means classification; the positive class of a
        # binary task is the second category in sorted order ("1" of "0"/"1"), as scikit-learn orders.
        if label is None:
            return "regression", None, ()
        ordered = sorted(label.categories)
        return "classification", (ordered[1] if len(ordered) == 2 else None), ()
    if not isinstance(schema, Mapping):
        raise ProfileError("schema: expected a JSON object")
    task = schema.get("task")
    if task not in ("classification", "regression"):
        raise ProfileError(f"schema.task: expected 'classification' or 'regression', got {task!r}")
    positive = schema.get("positive_class")
    if positive is not None and not isinstance(positive, str):
        raise ProfileError(f"schema.positive_class: expected a string or null, got {positive!r}")
    sensitive = schema.get("sensitive") or []
    if not isinstance(sensitive, list) or not all(isinstance(s, str) for s in sensitive):
        raise ProfileError("schema.sensitive: expected a list of strings")
    declared = schema.get("features")
    if isinstance(declared, list):
        kinds = {f.get("name"): f.get("kind") for f in declared if isinstance(f, Mapping)}
        for column in features:
            if kinds.get(column.name) not in (None, column.kind):
                raise ProfileError(
                    f"profile.features.{column.name}: kind {column.kind!r} disagrees with "
                    f"schema.json's {kinds.get(column.name)!r}"
                )
    if task == "classification":
        return "classification", positive, tuple(sensitive)
    return "regression", None, tuple(sensitive)


def _parse_column(name: str, body: Any, where: str) -> ColumnReference:
    if not isinstance(body, Mapping):
        raise ProfileError(f"{where}: expected an object")
    kind = body.get("kind")
    counts = _counts(body.get("counts"), where)
    if kind == "numeric":
        edges = body.get("edges")
        if (
            not isinstance(edges, list)
            or len(edges) < 2
            or not all(_is_number(e) and math.isfinite(e) for e in edges)
        ):
            raise ProfileError(f"{where}.edges: expected at least 2 finite numbers")
        edge_array = np.asarray(edges, dtype=np.float64)
        if np.any(np.diff(edge_array) <= 0):
            raise ProfileError(f"{where}.edges: expected strictly increasing values")
        if len(counts) != len(edges) + 2:
            raise ProfileError(
                f"{where}.counts: expected len(edges) + 2 = {len(edges) + 2} entries, got {len(counts)}"
            )
        mean, std = body.get("mean"), body.get("std")
        if not isinstance(mean, int | float) or not isinstance(std, int | float):
            raise ProfileError(f"{where}: expected numeric 'mean' and 'std'")
        if isinstance(mean, bool) or isinstance(std, bool) or not math.isfinite(std) or std < 0:
            raise ProfileError(f"{where}: expected numeric 'mean' and a non-negative 'std'")
        return NumericReference(name=name, edges=edge_array, counts=counts, mean=float(mean), std=float(std))
    if kind == "categorical":
        categories = body.get("categories")
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise ProfileError(f"{where}.categories: expected a list of strings")
        if len(set(categories)) != len(categories) or len(categories) > MAX_CATEGORIES:
            raise ProfileError(f"{where}.categories: expected at most {MAX_CATEGORIES} distinct strings")
        if len(counts) != len(categories) + 3:
            raise ProfileError(
                f"{where}.counts: expected len(categories) + 3 = {len(categories) + 3} entries, "
                f"got {len(counts)}"
            )
        return CategoricalReference(name=name, categories=tuple(categories), counts=counts)
    raise ProfileError(f"{where}.kind: expected 'numeric' or 'categorical', got {kind!r}")


def _counts(raw: object, where: str) -> NDArray[np.int64]:
    if not isinstance(raw, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in raw
    ):
        raise ProfileError(f"{where}.counts: expected a list of non-negative integers")
    counts = np.asarray(raw, dtype=np.int64)
    if counts.sum() == 0:
        raise ProfileError(f"{where}.counts: all zero, nothing to compare with")
    return counts


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
