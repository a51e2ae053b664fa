"""The reference profile (contracts §2) the drift monitor compares live traffic with.

Numeric columns: one sort per column, quantile edges read off the sorted values, bin counts by
``searchsorted`` on the same sorted array (about 3x faster than ``np.quantile`` + ``np.histogram``,
which sort again). Categorical columns: hash-based counts. Pure functions of arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

SCHEMA = "mlsteward.io/profile/v1"
DEFAULT_BINS = 10
MAX_CATEGORIES = 50


def numeric_summary(values: np.ndarray[Any, Any], bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Quantile edges, ``[below, b1..bk, above, missing]`` counts, mean and std (NaN = missing)."""
    values = np.asarray(values, dtype=np.float64)
    missing_mask = np.isnan(values)
    ordered = np.sort(values[~missing_mask])
    n = len(ordered)
    if n == 0:
        return {
            "kind": "numeric",
            "edges": [0.0, 0.0],
            "counts": [0, 0, 0, 0, int(missing_mask.sum())],
            "mean": None,
            "std": None,
        }
    position = np.linspace(0.0, 1.0, bins + 1) * (n - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    fraction = position - low
    quantiles = ordered[low] + fraction * (ordered[high] - ordered[low])
    quantiles[0], quantiles[-1] = ordered[0], ordered[-1]  # exact min and max, no rounding
    edges = np.unique(quantiles)
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    below_each = np.searchsorted(ordered, edges, side="left")  # rows < each edge
    inner = np.diff(below_each)
    inner[-1] = n - below_each[-2]  # the last bin also holds x == max
    counts = [0, *(int(c) for c in inner), 0, int(missing_mask.sum())]
    mean = float(ordered.mean())
    std = float(ordered.std())
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "counts": counts,
        "mean": mean if math.isfinite(mean) else None,
        "std": std if math.isfinite(std) else None,
    }


def categorical_summary(values: np.ndarray[Any, Any], missing_value: str | None = "") -> dict[str, Any]:
    """Top categories by count (then value), ``[c1..cm, other, unseen, missing]`` counts."""
    # One hash pass over the values; missing entries (null, or ``missing_value``) are counted apart.
    counted = pd.Series(values, dtype=object).value_counts(dropna=False, sort=False)
    missing = 0
    kept: dict[str, int] = {}
    for value, count in counted.items():
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == missing_value:
            missing += int(count)
        else:
            kept[str(value)] = kept.get(str(value), 0) + int(count)
    ranked = sorted(kept.items(), key=lambda kv: (-kv[1], kv[0]))
    top = ranked[:MAX_CATEGORIES]
    other = sum(count for _, count in ranked[MAX_CATEGORIES:])
    return {
        "kind": "categorical",
        "categories": [name for name, _ in top],
        "counts": [*(count for _, count in top), other, 0, missing],
    }


def score_values(task: str, values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The prediction score summarised: positive-class probability (binary), max probability
    (multiclass), or the predicted value (regression)."""
    if task == "regression":
        return values.ravel()
    if values.shape[1] == 2:
        return values[:, 1]
    return np.asarray(values.max(axis=1))


def build_features(frame: pd.DataFrame, features: list[str], categorical: list[str]) -> dict[str, Any]:
    """The profile document without its prediction part, for the training split ``frame``."""
    categorical_set = set(categorical)
    summaries = {
        name: (
            categorical_summary(frame[name].to_numpy(dtype=object))
            if name in categorical_set
            else numeric_summary(frame[name].to_numpy(dtype=np.float64))
        )
        for name in features
    }
    return {"schema": SCHEMA, "rows": len(frame), "features": summaries}


def build_prediction(
    task: str, labels: np.ndarray[Any, Any] | None, scores: np.ndarray[Any, Any]
) -> dict[str, Any]:
    """The profile's ``prediction`` part from the model's outputs on the training split."""
    label_summary = (
        categorical_summary(np.asarray(labels).astype(str).astype(object), missing_value=None)
        if task == "classification" and labels is not None
        else None
    )
    return {"label": label_summary, "score": numeric_summary(score_values(task, scores))}
