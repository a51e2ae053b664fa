"""The estimator allow-list: parameter checks, and every allow-listed estimator converts to ONNX
with parity (skl2onnx 1.20 with protobuf 7 once broke HistGradientBoosting)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime
import pandas as pd
import pytest

from mlsteward.api import model as api_model
from mlsteward.training import conversion, errors, pipeline

FEATURES = ["income", "ratio", "purpose"]
CATEGORICAL = ["purpose"]
SMALL = {"n_estimators": 10, "max_depth": 4}
PARAMS: dict[str, dict[str, Any]] = {
    "RandomForestClassifier": SMALL,
    "RandomForestRegressor": SMALL,
    "GradientBoostingClassifier": {"n_estimators": 20},
    "GradientBoostingRegressor": {"n_estimators": 20},
    "HistGradientBoostingClassifier": {"max_iter": 20},
    "HistGradientBoostingRegressor": {"max_iter": 20},
}


def _frame(rows: int = 600) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    income = rng.lognormal(10, 0.5, rows)
    income[::17] = np.nan
    ratio = rng.random(rows)
    purpose = np.asarray(rng.choice(["car", "home", "other", ""], rows), dtype=object)
    value = (
        0.00002 * np.nan_to_num(income, nan=20000) - 2 * ratio + (purpose == "car") + rng.normal(0, 0.3, rows)
    )
    frame = pd.DataFrame({"income": income, "ratio": ratio, "purpose": purpose})
    return frame, np.digitize(value, np.quantile(value, [0.33, 0.66])), value


def test_the_trainer_allow_list_is_exactly_the_api_allow_list() -> None:
    assert set(pipeline.ESTIMATORS) == set(api_model.CLASSIFIERS) | set(api_model.REGRESSORS)


@pytest.mark.parametrize("class_name", sorted(pipeline.ESTIMATORS))
def test_every_allow_listed_estimator_converts_to_onnx_and_agrees_with_scikit_learn(class_name: str) -> None:
    task = "classification" if class_name in api_model.CLASSIFIERS else "regression"
    frame, classes, value = _frame()
    target = classes if task == "classification" else value
    estimator = pipeline.build_estimator(
        api_model.EstimatorSpec(class_name=class_name, params=PARAMS.get(class_name, {}), seed=1)
    )
    model = pipeline.fit(pipeline.build_pipeline(estimator, FEATURES, CATEGORICAL), frame, target)

    model_bytes = conversion.to_onnx(model, FEATURES, CATEGORICAL, task)
    served = conversion.predict_onnx(model_bytes, conversion.feeds(frame, FEATURES, CATEGORICAL), task)
    report = conversion.parity(
        conversion.predict_sklearn(model, frame, task), served, api_model.ParityLimits(), task
    )

    assert report["passed"], report
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == FEATURES
    assert [o.name for o in session.get_outputs()] == (
        ["label", "probabilities"] if task == "classification" else ["variable"]
    )
    if task == "classification":
        assert served.values.shape == (len(frame), 3)
    assert conversion.to_onnx(model, FEATURES, CATEGORICAL, task) == model_bytes  # deterministic


@pytest.mark.parametrize(
    ("class_name", "params", "words"),
    [
        ("LogisticRegression", {"max_iterations": 10}, "no parameter 'max_iterations'"),
        ("LogisticRegression", {"C": -1.0}, "'C'"),
        ("RandomForestClassifier", {"n_estimators": "ten"}, "n_estimators"),
        ("Ridge", {"alpha": {"nested": 1}}, "scalar"),
        ("HistGradientBoostingClassifier", {"random_state": 3}, "estimator.seed"),
    ],
)
def test_bad_parameters_are_refused_with_the_parameter_named(
    class_name: str, params: dict[str, Any], words: str
) -> None:
    spec = api_model.EstimatorSpec(class_name=class_name, params=params)
    with pytest.raises(errors.EstimatorInvalidError, match=words):
        pipeline.build_estimator(spec)


def test_the_seed_becomes_random_state_and_linear_models_are_scaled_but_trees_are_not() -> None:
    forest = pipeline.build_estimator(api_model.EstimatorSpec(class_name="RandomForestClassifier", seed=9))
    linear = pipeline.build_estimator(api_model.EstimatorSpec(class_name="Ridge"))

    assert forest.random_state == 9
    tree_steps = pipeline.build_pipeline(forest, FEATURES, CATEGORICAL).steps[0][1].transformers[0][1].steps
    linear_steps = pipeline.build_pipeline(linear, FEATURES, CATEGORICAL).steps[0][1].transformers[0][1].steps
    assert [n for n, _ in tree_steps] == ["impute"] and [n for n, _ in linear_steps] == ["impute", "scale"]
