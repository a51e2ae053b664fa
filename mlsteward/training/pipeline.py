"""The allow-listed estimator, its parameter checks, the preprocessing pipeline, the split and the fit.

Preprocessing is fixed so that every pipeline converts to the ONNX layout of contracts §1:
numerics are median-imputed (and standardised for the linear models; trees gain nothing from
scaling), categoricals one-hot encoded with
``handle_unknown="ignore"`` (missing categoricals arrive as ``""``, a category of their own).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import sys
from typing import Any

import numpy as np
import pandas as pd

from mlsteward.api import model as api_model
from mlsteward.training import errors

# The allow-list: exactly the classes of mlsteward.api.model, and where they live.
ESTIMATORS: dict[str, str] = {
    "LogisticRegression": "sklearn.linear_model",
    "LinearRegression": "sklearn.linear_model",
    "Ridge": "sklearn.linear_model",
    "RandomForestClassifier": "sklearn.ensemble",
    "RandomForestRegressor": "sklearn.ensemble",
    "GradientBoostingClassifier": "sklearn.ensemble",
    "GradientBoostingRegressor": "sklearn.ensemble",
    "HistGradientBoostingClassifier": "sklearn.ensemble",
    "HistGradientBoostingRegressor": "sklearn.ensemble",
}
LINEAR = frozenset({"LogisticRegression", "LinearRegression", "Ridge"})
_SCALARS = (bool, int, float, str, type(None))


@dataclasses.dataclass(frozen=True)
class Split:
    """Row positions of the training split and the holdout."""

    train: np.ndarray[Any, Any]
    test: np.ndarray[Any, Any]
    stratified: bool


def build_estimator(spec: api_model.EstimatorSpec) -> Any:
    """The estimator with the spec's params and seed, its parameters checked against the class."""
    module_name = ESTIMATORS.get(spec.class_name)
    if module_name is None:
        raise errors.EstimatorInvalidError(
            f"estimator {spec.class_name!r} is not allow-listed; use one of {', '.join(sorted(ESTIMATORS))}"
        )
    cls = getattr(importlib.import_module(module_name), spec.class_name)
    known = cls().get_params(deep=False)
    for name, value in spec.params.items():
        if name not in known:
            raise errors.EstimatorInvalidError(
                f"{spec.class_name} has no parameter {name!r}; known parameters: {', '.join(sorted(known))}"
            )
        if name == "random_state":
            raise errors.EstimatorInvalidError(
                f"{spec.class_name} parameter 'random_state' is set from estimator.seed; "
                "remove it from params"
            )
        if not isinstance(value, _SCALARS):
            raise errors.EstimatorInvalidError(
                f"{spec.class_name} parameter {name!r} must be a scalar (number, string, boolean or null), "
                f"got {type(value).__name__}"
            )
    params = dict(spec.params)
    if "random_state" in known:
        params["random_state"] = spec.seed
    estimator = cls(**params)
    try:
        estimator._validate_params()
    except (ValueError, TypeError) as error:
        raise errors.EstimatorInvalidError(f"{spec.class_name} parameters are invalid: {error}") from error
    return estimator


def effective_params(estimator: Any) -> dict[str, Any]:
    """The estimator's constructor parameters as JSON scalars (for lineage)."""
    return {k: v for k, v in sorted(estimator.get_params(deep=False).items()) if isinstance(v, _SCALARS)}


def build_pipeline(estimator: Any, features: list[str], categorical: list[str]) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [f for f in features if f not in set(categorical)]
    categorical_in_order = [f for f in features if f in set(categorical)]
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if type(estimator).__name__ in LINEAR:
            # Trees gain nothing from scaling and lose parity: ONNX would scale in float32 and
            # move values that sit exactly on a float64 split threshold to the other side.
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical_in_order:
        transformers.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64),
                categorical_in_order,
            )
        )
    preprocess = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def split(target: np.ndarray[Any, Any], task: str, test_fraction: float, seed: int) -> Split:
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(target))
    stratify = target if task == "classification" else None
    n_test = int(np.ceil(test_fraction * len(rows)))
    if n_test < 1 or len(rows) - n_test < 2:
        raise errors.DataInvalidError(
            f"dataset has {len(rows)} rows: too few for a holdout of {test_fraction:.0%} and a training split"
        )
    try:
        train, test = train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=stratify)
    except ValueError as error:
        raise errors.DataInvalidError(f"cannot split the dataset for a holdout: {error}") from error
    return Split(train=np.sort(train), test=np.sort(test), stratified=stratify is not None)


def fit(pipeline: Any, frame: pd.DataFrame, target: np.ndarray[Any, Any]) -> Any:
    """Fit, keeping the estimator's own printing (verbose=...) off stdout, which carries the outcome."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            pipeline.fit(frame, target)
    except (ValueError, TypeError) as error:
        raise errors.EstimatorInvalidError(f"fitting failed: {error}") from error
    return pipeline
