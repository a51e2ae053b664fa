"""Proxy detection: how well the model's features predict each sensitive column.

A small classifier (logistic regression on the same preprocessing as the model) is fitted on a
seeded sample to predict the sensitive column's groups from the features; its ROC AUC on a held
out part of the sample (one-vs-rest macro for more than two groups) is the proxy score. A score
above ``protectedAttributes.maxProxyRocAuc`` flags the column as proxied: the model can learn it
even though it never sees it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from mlsteward.training import fairness, pipeline

MIN_GROUP_ROWS = 20


def score(
    frame: pd.DataFrame,
    sensitive: pd.Series,
    *,
    features: list[str],
    categorical: list[str],
    max_rows: int,
    seed: int,
    threshold: float,
) -> dict[str, Any]:
    """The proxy report for one sensitive column."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    rows = np.arange(len(frame))
    if len(rows) > max_rows:
        rows = np.sort(rng.choice(rows, size=max_rows, replace=False))
    groups = fairness.group_labels(sensitive.iloc[rows].reset_index(drop=True))
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
    x = frame.iloc[rows[keep]].reset_index(drop=True)
    y = groups[keep].astype(str)
    x_fit, x_eval, y_fit, y_eval = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    model = pipeline.build_pipeline(LogisticRegression(max_iter=300), features, categorical)
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
