"""Every bad input: a non-zero exit, a message naming the problem, nothing at the artifact location."""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from tests.component.training.conftest import credit_spec, no_artifact, train

pytestmark = pytest.mark.timeout(120)

Case = Callable[[pathlib.Path, pd.DataFrame], dict[str, Any]]


def _write(frame: pd.DataFrame, path: pathlib.Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def _data(change: Callable[[pd.DataFrame], pd.DataFrame], **spec_changes: Any) -> Case:
    def case(tmp: pathlib.Path, frame: pd.DataFrame) -> dict[str, Any]:
        return credit_spec(_write(change(frame.head(600).copy()), tmp / "data.csv"), **spec_changes)

    return case


def _spec(**spec_changes: Any) -> Case:
    def case(tmp: pathlib.Path, frame: pd.DataFrame) -> dict[str, Any]:
        return credit_spec(_write(frame.head(600), tmp / "data.csv"), **spec_changes)

    return case


def _assign(column: str, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = value
        return frame

    return change


CASES: dict[str, tuple[Case, str, list[str]]] = {
    "a feature column is missing": (
        _data(lambda f: f.drop(columns=["debt_ratio"])),
        "DataInvalid",
        ["debt_ratio"],
    ),
    "the target column is missing": (
        _data(lambda f: f.drop(columns=["default"])),
        "DataInvalid",
        ["default"],
    ),
    "the dataset has no rows": (_data(lambda f: f.head(0)), "DataInvalid", ["empty"]),
    "the target has a single class": (
        _data(_assign("default", 1)),
        "DataInvalid",
        ["default", "single class"],
    ),
    "a feature is missing in every row": (
        _data(_assign("loan_amount", None)),
        "DataInvalid",
        ["loan_amount"],
    ),
    "a numeric feature holds text": (
        _data(_assign("income", "high")),
        "DataInvalid",
        ["income", "categorical"],
    ),
    "the target has missing values": (
        _data(lambda f: f.assign(default=f["default"].astype("float").where(f.index > 5))),
        "DataInvalid",
        ["default", "missing"],
    ),
    "sex is a feature": (
        _spec(dataset={"features": ["income", "sex"], "categorical": ["sex"], "sensitive": []}),
        "PolicyViolation",
        ["'sex'", "protected"],
    ),
    "a synonym of sex is a feature": (
        _data(
            lambda f: f.rename(columns={"sex": "Gender"}),
            dataset={"features": ["income", "Gender"], "categorical": ["Gender"], "sensitive": []},
        ),
        "PolicyViolation",
        ["'Gender'", "sex"],
    ),
    "a sensitive column is a feature": (
        _spec(dataset={"features": ["income", "region"], "categorical": ["region"], "sensitive": ["region"]}),
        "PolicyViolation",
        ["'region'", "sensitive"],
    ),
    "an additional protected column is a feature": (
        _spec(
            protectedAttributes={"additional": ["region"]},
            dataset={"features": ["income", "region"], "categorical": ["region"]},
        ),
        "PolicyViolation",
        ["'region'", "additional"],
    ),
    "the estimator is not allow-listed": (
        _spec(estimator={"className": "SVC"}),
        "EstimatorInvalid",
        ["className"],
    ),
    "an estimator parameter is unknown": (
        _spec(estimator={"className": "LogisticRegression", "params": {"max_iterations": 5}}),
        "EstimatorInvalid",
        ["max_iterations"],
    ),
    "an estimator parameter has a bad value": (
        _spec(estimator={"className": "RandomForestClassifier", "params": {"n_estimators": -3}}),
        "EstimatorInvalid",
        ["n_estimators"],
    ),
    "an estimator parameter has a wrong type": (
        _spec(estimator={"className": "LogisticRegression", "params": {"max_iter": "many"}}),
        "EstimatorInvalid",
        ["max_iter"],
    ),
    "an estimator parameter is not a scalar": (
        _spec(estimator={"className": "LogisticRegression", "params": {"C": [1, 2]}}),
        "EstimatorInvalid",
        ["'C'", "scalar"],
    ),
    "random_state is set in params": (
        _spec(estimator={"className": "LogisticRegression", "params": {"random_state": 1}}),
        "EstimatorInvalid",
        ["random_state", "seed"],
    ),
    "a regressor is asked to classify": (
        _spec(estimator={"className": "Ridge"}),
        "EstimatorInvalid",
        ["Ridge"],
    ),
    "the dataset file does not exist": (
        lambda tmp, frame: credit_spec(str(tmp / "nope.parquet")),
        "DataInvalid",
        ["nope.parquet"],
    ),
    "the dataset is in an unsupported store": (
        lambda tmp, frame: credit_spec("gs://bucket/credit.parquet"),
        "DataInvalid",
        ["dataset.uri"],
    ),
    "the dataset is not valid parquet": (
        lambda tmp, frame: credit_spec(str(_garbage(tmp / "data.parquet"))),
        "DataInvalid",
        ["parquet"],
    ),
    "the target is also a feature": (
        _spec(dataset={"features": ["income", "default"]}),
        "DataInvalid",
        ["'default'", "features"],
    ),
    "parity limits the ONNX model cannot meet": (
        _spec(
            estimator={"className": "RandomForestClassifier", "params": {"n_estimators": 10}},
            parity={"epsilon": 1e-12, "maxShareAboveEpsilon": 0.0, "maxAbsDifference": 1e-12},
        ),
        "ParityFailed",
        ["ONNX", "maxAbsDifference"],
    ),
}


def _garbage(path: pathlib.Path) -> pathlib.Path:
    path.write_bytes(b"this is not parquet at all")
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_fails_with_a_message_naming_the_problem_and_leaves_no_artifact(
    name: str, tmp_path: pathlib.Path, credit_frame: pd.DataFrame
) -> None:
    build, reason, words = CASES[name]
    store = tmp_path / "store"
    run = train(store, build(tmp_path, credit_frame))

    assert run.returncode == (1 if reason == "ParityFailed" else 2), run.stderr[-2000:]
    assert run.outcome["outcome"] == "failed" and run.outcome["reason"] == reason
    for word in words:
        assert word in run.outcome["message"], run.outcome["message"]
    assert run.outcome["artifact"] is None
    assert no_artifact(store)


def test_a_pinned_digest_that_differs_fails_before_the_data_is_parsed(tmp_path: pathlib.Path) -> None:
    store = tmp_path / "store"
    garbage = _garbage(tmp_path / "data.parquet")
    pinned = hashlib.sha256(b"other bytes").hexdigest()
    run = train(store, credit_spec(str(garbage), dataset={"sha256": pinned}))

    # The file is not parquet: failing with DigestMismatch proves the digest was checked first.
    assert run.returncode == 2 and run.outcome["reason"] == "DigestMismatch"
    assert pinned in run.outcome["message"]
    assert run.outcome["dataset_sha256"] == hashlib.sha256(garbage.read_bytes()).hexdigest()
    assert no_artifact(store)


def test_a_dataset_url_that_answers_404_fails_naming_the_status(
    tmp_path: pathlib.Path, http_root: tuple[pathlib.Path, str]
) -> None:
    store = tmp_path / "store"
    run = train(store, credit_spec(f"{http_root[1]}/missing.csv"))

    assert run.returncode == 2 and run.outcome["reason"] == "DataInvalid"
    assert "404" in run.outcome["message"]
    assert no_artifact(store)


def test_a_spec_that_is_not_yaml_fails_with_exit_code_2(tmp_path: pathlib.Path) -> None:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text("task: [classification\n")
    run = train(tmp_path / "store", spec_path=spec_path)

    assert run.returncode == 2 and run.outcome["reason"] == "DataInvalid"
    assert "YAML" in run.outcome["message"]


def test_no_spec_at_all_fails_with_exit_code_2(tmp_path: pathlib.Path) -> None:
    run = train(tmp_path / "store")

    assert run.returncode == 2 and "MLSTEWARD_MODEL_SPEC" in run.outcome["message"]
