"""Group fairness on the holdout, per sensitive column, and the fairness gates.

For binary classification: per group the size, selection rate (share predicted positive), true-
and false-positive rates; across groups the demographic parity difference and ratio and the
equalized odds difference. Only groups of at least ``minGroupSize`` rows are compared; a smaller
group makes the column's result inconclusive (unless the large groups already fail a limit).
Pure functions of arrays.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from mlsteward.api import model as api_model
from mlsteward.training import metrics

MISSING_GROUP = "<missing>"
_MAX_DISCRETE = 10


def group_labels(series: pd.Series, reference: pd.Series | None = None) -> np.ndarray[Any, Any]:
    """Group name per row: the value as text, or for a many-valued numeric column (age) its quartile
    band ``[lo, hi)``, the quartiles taken over ``reference`` (the whole column) when given."""
    missing = series.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        source = series if reference is None else reference
        present = source.dropna().to_numpy(dtype="float64")
        # A hash pass for the distinct count and a selection for the quartiles: no full sort.
        if len(pd.unique(present)) > _MAX_DISCRETE:
            edges = np.unique(np.quantile(present, [0.25, 0.5, 0.75]))
            names = _band_names(edges)
            index = np.searchsorted(edges, np.where(missing, 0.0, values), side="right")
            labels = np.asarray(names, dtype=object)[index]
            labels[missing] = MISSING_GROUP
            return labels
        distinct, inverse = np.unique(np.where(missing, 0.0, values), return_inverse=True)
        text: np.ndarray[Any, Any] = np.asarray([_number(v) for v in distinct], dtype=object)[inverse]
    elif isinstance(series.dtype, pd.CategoricalDtype):
        # One string per category, gathered by code (the trainer reads text columns as categoricals).
        categories = np.asarray([str(c) for c in series.cat.categories] + [MISSING_GROUP], dtype=object)
        codes = series.cat.codes.to_numpy()
        text = categories[np.where(codes < 0, len(categories) - 1, codes)]
    else:
        text = series.astype(str).to_numpy(dtype=object)
    text[missing] = MISSING_GROUP
    return text


def _number(value: float) -> str:
    return str(int(value)) if np.isfinite(value) and value == int(value) else str(value)


def _band_names(edges: np.ndarray[Any, Any]) -> list[str]:
    bounds = [_number(float(e)) for e in edges]
    names = [f"<{bounds[0]}"]
    names += [f"[{lo}, {hi})" for lo, hi in itertools.pairwise(bounds)]
    names.append(f">={bounds[-1]}")
    return names


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def column_report(
    groups: np.ndarray[Any, Any],
    y_true_positive: np.ndarray[Any, Any] | None,
    predicted_positive: np.ndarray[Any, Any] | None,
    gates: api_model.FairnessGates,
) -> dict[str, Any]:
    """The report for one sensitive column; positives are None when the task has no selection
    (regression, multiclass), which leaves only group sizes."""
    # Every count in one pass per quantity: group codes by hashing, then bincount.
    codes, uniques = pd.factorize(pd.Series(groups, dtype=object), use_na_sentinel=False)
    width = len(uniques)

    def counts(mask: np.ndarray[Any, Any] | None = None) -> list[int]:
        chosen = codes if mask is None else codes[np.asarray(mask, dtype=bool)]
        return [int(n) for n in np.bincount(chosen, minlength=width)]

    sizes = counts()
    per_group: dict[str, dict[str, Any]] = {}
    if y_true_positive is not None and predicted_positive is not None:
        truth = np.asarray(y_true_positive, dtype=bool)
        selected = np.asarray(predicted_positive, dtype=bool)
        chosen, positives = counts(selected), counts(truth)
        true_positives, false_positives = counts(selected & truth), counts(selected & ~truth)
    for index in sorted(range(width), key=lambda i: str(uniques[i])):
        entry: dict[str, Any] = {"size": sizes[index]}
        if y_true_positive is not None and predicted_positive is not None:
            negatives = sizes[index] - positives[index]
            entry["selection_rate"] = _rate(chosen[index], sizes[index])
            entry["true_positive_rate"] = _rate(true_positives[index], positives[index])
            entry["false_positive_rate"] = _rate(false_positives[index], negatives)
        per_group[str(uniques[index])] = entry
    small = sorted(g for g, e in per_group.items() if e["size"] < gates.min_group_size)
    eligible = [e for g, e in per_group.items() if g not in small]
    report: dict[str, Any] = {
        "groups": per_group,
        "small_groups": small,
        "min_group_size": gates.min_group_size,
    }
    if y_true_positive is None or predicted_positive is None:
        report["status"] = "inconclusive" if _any_gate(gates) else "passed"
        report["note"] = "selection-rate fairness is measured for binary classification only"
        return report
    summary = _summary(eligible)
    report.update(summary)
    checks = _checks(gates, summary, enough_groups=len(eligible) >= 2)
    status = metrics.combine(c["status"] for c in checks)
    if status == "passed" and small and checks:
        status = "inconclusive"
    report["checks"] = checks
    report["status"] = status
    return report


def _summary(eligible: list[dict[str, Any]]) -> dict[str, float | None]:
    def spread(key: str) -> tuple[float | None, float | None]:
        values = [e[key] for e in eligible if e.get(key) is not None]
        if len(values) < 2:
            return None, None
        low, high = min(values), max(values)
        return high - low, (low / high if high > 0 else 1.0)

    dp_difference, dp_ratio = spread("selection_rate")
    tpr_gap, _ = spread("true_positive_rate")
    fpr_gap, _ = spread("false_positive_rate")
    gaps = [g for g in (tpr_gap, fpr_gap) if g is not None]
    return {
        "demographic_parity_difference": dp_difference,
        "demographic_parity_ratio": dp_ratio,
        "equalized_odds_difference": max(gaps) if gaps else None,
    }


def _any_gate(gates: api_model.FairnessGates) -> bool:
    return any(
        v is not None
        for v in (
            gates.max_demographic_parity_difference,
            gates.min_demographic_parity_ratio,
            gates.max_equalized_odds_difference,
        )
    )


def _checks(
    gates: api_model.FairnessGates, summary: dict[str, float | None], enough_groups: bool
) -> list[dict[str, Any]]:
    limits = (
        (
            "maxDemographicParityDifference",
            gates.max_demographic_parity_difference,
            "demographic_parity_difference",
            "max",
        ),
        ("minDemographicParityRatio", gates.min_demographic_parity_ratio, "demographic_parity_ratio", "min"),
        (
            "maxEqualizedOddsDifference",
            gates.max_equalized_odds_difference,
            "equalized_odds_difference",
            "max",
        ),
    )
    checks: list[dict[str, Any]] = []
    for gate, limit, metric, kind in limits:
        if limit is None:
            continue
        value = summary.get(metric)
        if value is None or not enough_groups:
            status = "inconclusive"
        else:
            status = "passed" if (value >= limit if kind == "min" else value <= limit) else "failed"
        checks.append({"gate": gate, "limit": limit, "metric": metric, "value": value, "status": status})
    return checks


def absent_report(gates: api_model.FairnessGates) -> dict[str, Any]:
    """A sensitive column named in the spec but missing from the data."""
    return {"status": "inconclusive" if _any_gate(gates) else "passed", "note": "column not in the dataset"}


def overall(reports: dict[str, dict[str, Any]], gates: api_model.FairnessGates) -> str:
    if not reports:
        return "inconclusive" if _any_gate(gates) else "passed"
    return metrics.combine(r["status"] for r in reports.values())
