"""Dataset checks against the spec, hashing, and the outcome object's size limit."""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlsteward.api import model as api_model
from mlsteward.store.errors import StoreError
from mlsteward.training import data, errors, outcome


def _spec(task: str = "classification", **dataset: Any) -> api_model.ModelSpec:
    return api_model.ModelSpec.model_validate(
        {
            "task": task,
            "dataset": {
                "uri": "/d.csv",
                "target": "y",
                "features": ["n", "c"],
                "categorical": ["c"],
                **dataset,
            },
            "estimator": {"className": "LogisticRegression" if task == "classification" else "Ridge"},
        }
    )


def test_validated_frames_hold_floats_text_with_empty_missing_and_the_target() -> None:
    frame = pd.DataFrame(
        {"n": [1, 2, None, 4], "c": [36.0, None, 60.0, 36.0], "y": [0, 1, 0, 1], "s": list("abab")}
    )

    valid = data.validate(frame, _spec(sensitive=["s", "absent"]))

    assert valid["n"].dtype == np.float64 and np.isnan(valid["n"][2])
    assert valid["c"].tolist() == ["36", "", "60", "36"]
    assert valid["y"].tolist() == [0, 1, 0, 1] and "s" in valid and "absent" not in valid


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (pd.DataFrame({"n": [1.0, 2.0], "c": ["a", "b"]}), "'y'"),
        (pd.DataFrame({"n": [1.0, 2.0], "c": [0.5, 1.5], "y": [0, 1]}), "fractional"),
        (pd.DataFrame({"n": [np.inf, 2.0], "c": ["a", "b"], "y": [0, 1]}), "infinite"),
        (pd.DataFrame({"n": [1.0, 2.0, 3.0], "c": ["a", "b", "c"], "y": [0, 0, 1]}), "single row"),
        (pd.DataFrame({"n": [1.0, 2.0], "c": ["a", "b"], "y": [0.5, 1.0]}), "fractional"),
    ],
)
def test_frames_that_do_not_fit_the_spec_are_refused_naming_the_column(
    frame: pd.DataFrame, words: str
) -> None:
    with pytest.raises(errors.DataInvalidError, match=words):
        data.validate(frame, _spec())


def test_a_regression_target_must_be_numeric() -> None:
    frame = pd.DataFrame({"n": [1.0, 2.0], "c": ["a", "b"], "y": ["x", "z"]})
    with pytest.raises(errors.DataInvalidError, match="numeric for regression"):
        data.validate(frame, _spec("regression"))


def test_fetch_hashes_the_bytes_it_reads_and_infers_the_format(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"n,c,y\n1,a,0\n2,b,1\n")

    raw = data.fetch(path.as_uri(), None, hashlib.sha256(path.read_bytes()).hexdigest())

    assert raw.format == "csv" and raw.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert data.parse(raw, ["n", "y", "missing"]).columns.tolist() == ["n", "y"]
    with pytest.raises(errors.DataInvalidError, match=r"dataset\.format"):
        data.infer_format("/data/credit.txt", None)


def test_the_outcome_stays_under_four_kibibytes_with_a_huge_message() -> None:
    document = outcome.build(
        reason="DataInvalid", message="x" * 100_000, metrics={f"m{i}": 0.5 for i in range(400)}
    )

    encoded = outcome.encode(document)

    assert len(encoded) < outcome.MAX_TERMINATION_BYTES
    assert json.loads(encoded)["reason"] == "DataInvalid" and json.loads(encoded)["outcome"] == "failed"


def test_parquet_text_columns_arrive_as_categoricals_and_leave_validation_as_shared_objects(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame(
        {"n": [1.0, 2.0, 3.0, 4.0], "c": ["a", None, "a", "b"], "y": ["p", "q", "p", "q"]}
    ).to_parquet(path, index=False)

    parsed = data.parse(data.fetch(str(path), None, None), ["n", "c", "y"])
    valid = data.validate(parsed, _spec())

    assert isinstance(parsed["c"].dtype, pd.CategoricalDtype)
    assert valid["c"].dtype == object and valid["c"].tolist() == ["a", "", "a", "b"]
    assert valid["c"][0] is valid["c"][2]  # one string object per category, not one per row
    assert valid["y"].dtype == object and valid["y"].tolist() == ["p", "q", "p", "q"]


@pytest.mark.parametrize(
    ("store_reason", "reason"),
    [
        ("CredentialsRejected", "StoreCredentialsRejected"),
        ("AccessDenied", "StoreAccessDenied"),
        ("BucketMissing", "StoreBucketMissing"),
        ("Unreachable", "StoreUnreachable"),
        ("DigestMismatch", "ArtifactDigestMismatch"),
        ("ObjectMissing", "StoreFailed"),
        ("StoreFailed", "StoreFailed"),
    ],
)
def test_a_store_failure_keeps_the_stores_reason_and_is_not_bad_input(store_reason: Any, reason: str) -> None:
    failure = errors.store_failure(
        StoreError(store_reason, "s3://models/x: says why"), "cannot write: says why"
    )
    assert (failure.reason, failure.message, failure.exit_code) == (reason, "cannot write: says why", 1)
    assert failure.reason in errors.REASONS


def test_the_operator_passes_every_trainer_reason_through() -> None:
    from mlsteward.operator import conditions

    assert {str(reason) for reason in conditions.TRAINER_REASONS} == set(errors.REASONS)
