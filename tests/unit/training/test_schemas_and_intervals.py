"""The feature-schema check (every mismatch names the column) and the bootstrap intervals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk_metrics

from mlsteward.api import model as api_model
from mlsteward.training import errors, intervals, schemas

COLUMNS: list[dict[str, Any]] = [
    {"name": "y", "type": "integer", "allowedValues": ["0", "1"], "nullable": False},
    {"name": "income", "type": "number", "minimum": 0},
    {"name": "purpose", "type": "string", "allowedValues": ["car", "home"]},
    {"name": "sex", "type": "string"},
]


def spec(schema: dict[str, Any] | None = None) -> api_model.ModelSpec:
    return api_model.ModelSpec.model_validate(
        {
            "task": "classification",
            "dataset": {
                "uri": "/d.csv",
                "target": "y",
                "features": ["income", "purpose"],
                "categorical": ["purpose"],
                "sensitive": ["sex"],
            },
            "estimator": {"className": "LogisticRegression"},
            "schema": schema if schema is not None else {"version": "3", "columns": COLUMNS},
        }
    )


def frame(**changes: list[Any]) -> pd.DataFrame:
    data: dict[str, list[Any]] = {
        "y": [0, 1, 0, 1],
        "income": [1.0, 2.5, None, 4.0],
        "purpose": ["car", "home", "car", None],
        "sex": ["F", "M", "F", "M"],
    }
    data.update(changes)
    return pd.DataFrame(data)


def test_data_matching_the_schema_passes() -> None:
    schemas.check(frame(), spec())


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"purpose": ["car", "boat", "car", "boat"]}, ["'purpose'", "allowedValues", "2 rows", "boat"]),
        ({"income": [1.0, -5.0, 2.0, 3.0]}, ["'income'", "below minimum 0", "-5.0"]),
        ({"income": ["1", "x", "2", "3"]}, ["'income'", "type is number", "x"]),
        ({"y": [0, 1, None, 1]}, ["'y'", "not nullable", "1 rows"]),
        ({"y": [0, 1, 2, 1]}, ["'y'", "allowedValues", "2"]),
        ({"y": [0.0, 1.5, 0.0, 1.0]}, ["'y'", "integer", "1.5"]),
        ({"sex": [1, 2, 1, 2]}, ["'sex'", "type is string"]),
    ],
)
def test_each_mismatch_fails_as_data_invalid_naming_the_column(
    changes: dict[str, list[Any]], words: list[str]
) -> None:
    with pytest.raises(errors.DataInvalidError) as caught:
        schemas.check(frame(**changes), spec())
    assert caught.value.reason == "DataInvalid"
    for word in words:
        assert word in caught.value.message


def test_a_spec_column_the_schema_does_not_declare_is_refused() -> None:
    partial = {"version": "3", "columns": [c for c in COLUMNS if c["name"] != "sex"]}
    with pytest.raises(errors.DataInvalidError, match="does not declare column 'sex'"):
        schemas.check(frame(), spec(partial))


def test_a_declared_column_missing_from_the_data_is_refused() -> None:
    with pytest.raises(errors.DataInvalidError, match="no column 'sex', declared by schema version 3"):
        schemas.check(frame().drop(columns=["sex"]), spec())


def test_an_unresolved_configmap_reference_names_the_configmap() -> None:
    with pytest.raises(errors.DataInvalidError, match="ConfigMap 'credit-features'"):
        schemas.check(frame(), spec({"configMapRef": {"name": "credit-features"}}))


def test_the_digest_depends_on_the_declaration_not_on_where_it_came_from() -> None:
    inline = spec()
    resolved = spec({"version": "3", "columns": COLUMNS, "configMapRef": {"name": "credit-features"}})
    changed = spec({"version": "4", "columns": COLUMNS})
    assert inline.feature_schema is not None and resolved.feature_schema is not None
    assert changed.feature_schema is not None
    assert schemas.digest(inline.feature_schema) == schemas.digest(resolved.feature_schema)
    assert schemas.digest(inline.feature_schema) != schemas.digest(changed.feature_schema)
    entry = schemas.lineage_entry(resolved)
    assert entry == {
        "version": "3",
        "sha256": schemas.digest(inline.feature_schema),
        "config_map": "credit-features",
    }


def _classification(rows: int, seed: int) -> tuple[np.ndarray[Any, Any], ...]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    score = np.clip(0.35 * y + 0.65 * rng.random(rows), 0, 1)
    return y, (score > 0.5).astype(int), np.c_[1 - score, score]


def test_intervals_contain_the_point_estimates_and_repeat_with_the_seed() -> None:
    y, predicted, scores = _classification(3_000, 1)
    groups = {"sex": np.where(np.arange(3_000) % 3 == 0, "F", "M").astype(object)}
    kwargs: dict[str, Any] = {"classes": 2, "groups": groups, "y_pos": y == 1, "pred_pos": predicted == 1}

    first = intervals.holdout("classification", y, predicted, scores, seed=5, **kwargs)
    again = intervals.holdout("classification", y, predicted, scores, seed=5, **kwargs)
    other = intervals.holdout("classification", y, predicted, scores, seed=6, **kwargs)

    assert first == again and first != other
    assert (first["resamples"], first["confidence"], first["seed"]) == (200, 0.95, 5)
    exact = {
        "accuracy": sk_metrics.accuracy_score(y, predicted),
        "f1": sk_metrics.f1_score(y, predicted),
        "roc_auc": sk_metrics.roc_auc_score(y, scores[:, 1]),
        "log_loss": sk_metrics.log_loss(y, scores),
    }
    for name, value in exact.items():
        low, high = first["metrics"][name]
        assert low < value < high, (name, low, value, high)
        assert high - low < 0.1
    women = groups["sex"] == "F"
    rate = float(np.mean(predicted[women]))
    low, high = first["fairness"]["sex"]["F"]["selection_rate"]
    assert low < rate < high


def test_the_weighted_auc_of_unit_weights_is_scikit_learns_auc_with_ties() -> None:
    y, _, scores = _classification(500, 2)
    rounded = np.round(scores[:, 1], 1)  # many ties
    order = np.argsort(rounded, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(rounded[order])) + 1]
    auc = intervals._weighted_auc(np.ones((1, 500)), (y[order] == 1).astype(float), starts)
    assert auc[0] == pytest.approx(sk_metrics.roc_auc_score(y, rounded), abs=1e-12)


def test_regression_intervals_cover_rmse_mae_and_r2() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=2_000)
    predicted = y + rng.normal(scale=0.5, size=2_000)
    found = intervals.holdout(
        "regression", y, predicted, None, classes=0, groups={}, y_pos=None, pred_pos=None, seed=1
    )
    low, high = found["metrics"]["r2"]
    assert low < sk_metrics.r2_score(y, predicted) < high
    assert set(found["metrics"]) == {"rmse", "mae", "r2"} and found["fairness"] == {}


def test_a_configmaps_schema_resolves_into_the_spec_with_the_inline_digest() -> None:
    shared = spec({"configMapRef": {"name": "credit-features", "key": "schema.yaml"}})

    resolved = api_model.resolve_feature_schema(shared, {"version": "3", "columns": COLUMNS})

    inline = spec().feature_schema
    assert resolved.feature_schema is not None and inline is not None
    assert schemas.digest(resolved.feature_schema) == schemas.digest(inline)
    schemas.check(frame(), resolved)
    assert api_model.spec_hash(resolved) != api_model.spec_hash(shared)
    with pytest.raises(
        ValueError, match=r"ConfigMap credit-features key schema\.yaml is not a feature schema"
    ):
        api_model.resolve_feature_schema(shared, {"version": "3", "columns": [{"name": "y", "type": "date"}]})
