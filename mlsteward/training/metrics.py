"""Holdout metrics and the quality gates. Pure functions of arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlsteward.api import model as api_model

GateStatus = str  # "passed" | "failed" | "inconclusive"


def class_codes(values: np.ndarray[Any, Any], classes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Each value's index in ``classes`` (-1 when absent): integer labels keep the metrics fast."""
    values, classes = np.asarray(values), np.asarray(classes)
    if values.dtype.kind in "iub" and classes.dtype.kind in "iub":
        # Integer labels (the common case): a binary search, no text.
        order = np.argsort(classes, kind="stable")
        ordered = classes[order]
        position = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
        found: np.ndarray[Any, Any] = np.where(ordered[position] == values, order[position], -1)
        return found.astype(np.int64)
    codes: np.ndarray[Any, Any] = pd.Categorical(
        values.astype(str), categories=classes.astype(str)
    ).codes.astype(np.int64)
    return codes


def classification(
    y_true: np.ndarray[Any, Any],
    labels: np.ndarray[Any, Any],
    probabilities: np.ndarray[Any, Any],
    classes: np.ndarray[Any, Any],
) -> dict[str, float]:
    from sklearn import metrics

    y = class_codes(y_true, classes)
    predicted = class_codes(labels, classes)
    indices = np.arange(len(classes))
    result = {
        "accuracy": float(np.mean(y == predicted)),
        "log_loss": float(metrics.log_loss(y, np.clip(probabilities, 1e-15, 1.0), labels=indices)),
    }
    if len(classes) == 2:
        result["f1"] = float(metrics.f1_score(y, predicted, pos_label=1, labels=indices))
        if len(np.unique(y)) == 2:
            result["roc_auc"] = float(metrics.roc_auc_score(y == 1, probabilities[:, 1]))
    else:
        result["f1"] = float(metrics.f1_score(y, predicted, average="macro", labels=indices))
        if len(np.unique(y)) == len(classes):
            scores = probabilities / probabilities.sum(axis=1, keepdims=True)
            result["roc_auc"] = float(
                metrics.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=indices)
            )
    return result


def regression(y_true: np.ndarray[Any, Any], predicted: np.ndarray[Any, Any]) -> dict[str, float]:
    from sklearn import metrics

    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, predicted))),
        "mae": float(metrics.mean_absolute_error(y_true, predicted)),
        "r2": float(metrics.r2_score(y_true, predicted)) if len(y_true) > 1 else float("nan"),
    }


# gate field -> (metric, "min" | "max", task)
_QUALITY_LIMITS: dict[str, tuple[str, str, str]] = {
    "min_accuracy": ("accuracy", "min", "classification"),
    "min_roc_auc": ("roc_auc", "min", "classification"),
    "min_f1": ("f1", "min", "classification"),
    "max_log_loss": ("log_loss", "max", "classification"),
    "max_rmse": ("rmse", "max", "regression"),
    "max_mae": ("mae", "max", "regression"),
    "min_r2": ("r2", "min", "regression"),
}


def quality_gates(gates: api_model.QualityGates, measured: dict[str, float]) -> dict[str, Any]:
    """Each set limit checked: ``{"status": ..., "checks": [{limit, metric, value, passed}]}``."""
    checks: list[dict[str, Any]] = []
    for field, (metric, kind, _task) in _QUALITY_LIMITS.items():
        limit = getattr(gates, field)
        if limit is None:
            continue
        value = measured.get(metric)
        wire = api_model.QualityGates.model_fields[field].alias or field
        if value is None or not np.isfinite(value):
            checks.append(
                {"gate": wire, "limit": limit, "metric": metric, "value": None, "status": "inconclusive"}
            )
            continue
        passed = value >= limit if kind == "min" else value <= limit
        checks.append(
            {
                "gate": wire,
                "limit": limit,
                "metric": metric,
                "value": value,
                "status": "passed" if passed else "failed",
            }
        )
    return {"status": combine(c["status"] for c in checks), "checks": checks}


def combine(statuses: Any) -> GateStatus:
    """failed beats inconclusive beats passed; no checks at all is passed."""
    seen = set(statuses)
    if "failed" in seen:
        return "failed"
    if "inconclusive" in seen:
        return "inconclusive"
    return "passed"
