"""Proxy detection: how well the model's features predict each sensitive column.

A small classifier (logistic regression on the same preprocessing as the model) is fitted on a
seeded sample to predict the sensitive column's groups from the features; its ROC AUC on a held
out part of the sample (one-vs-rest macro for more than two groups) is the proxy score. A score
above ``protectedAttributes.maxProxyRocAuc`` flags the column as proxied: the model can learn it
even though it never sees it.

Every sensitive column is scored on the same sample, so the features are preprocessed once and
each column only fits its own classifier. The preprocessing (impute, scale, one-hot) is fitted
on the whole sample: it never sees a group label, so the held-out part still scores honestly.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from mlsteward.training import fairness, pipeline

MIN_GROUP_ROWS = 20
MAX_ITER = 300


def sample_rows(rows: int, max_rows: int, seed: int) -> np.ndarray[Any, Any]:
    """The seeded sample's row positions, ascending (all rows when there are few)."""
    if rows <= max_rows:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))


def reports(
    frame: pd.DataFrame,
    columns: list[str],
    *,
    features: list[str],
    categorical: list[str],
    max_rows: int,
    seed: int,
    threshold: float,
) -> dict[str, dict[str, Any]]:
    """The proxy report for each of ``columns`` (sensitive columns present in ``frame``)."""
    if not columns:
        return {}
    from sklearn.linear_model import LogisticRegression

    rows = sample_rows(len(frame), max_rows, seed)
    sample = frame.iloc[rows].reset_index(drop=True)
    preprocess = pipeline.build_pipeline(LogisticRegression(), features, categorical).steps[0][1]
    matrix = np.asarray(preprocess.fit_transform(sample[features]), dtype=np.float64)
    return {
        column: _score(matrix, fairness.group_labels(sample[column]), seed=seed, threshold=threshold)
        for column in columns
    }


def _score(
    matrix: np.ndarray[Any, Any], groups: np.ndarray[Any, Any], *, seed: int, threshold: float
) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    keep = groups != fairness.MISSING_GROUP
    names, counts = np.unique(groups[keep].astype(str), return_counts=True)
    common = set(names[counts >= MIN_GROUP_ROWS].tolist())
    keep &= np.isin(groups.astype(str), list(common))
    if len(common) < 2:
        return {
            "roc_auc": None,
            "flagged": False,
            "rows": int(keep.sum()),
            "threshold": threshold,
            "note": f"fewer than two groups with at least {MIN_GROUP_ROWS} rows in the sample",
        }
    x = matrix[keep]
    y = groups[keep].astype(str)
    x_fit, x_eval, y_fit, y_eval = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    model = LogisticRegression(max_iter=MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings say nothing about leakage
        model.fit(x_fit, y_fit)
        probabilities = model.predict_proba(x_eval)
    classes = model.classes_
    if len(classes) == 2:
        auc = float(roc_auc_score(y_eval == classes[1], probabilities[:, 1]))
    else:
        auc = float(roc_auc_score(y_eval, probabilities, multi_class="ovr", average="macro", labels=classes))
    return {
        "roc_auc": auc,
        "flagged": auc > threshold,
        "rows": len(y),
        "groups": sorted(common),
        "threshold": threshold,
    }
