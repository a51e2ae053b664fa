"""The protected-attribute policy on input names."""

from __future__ import annotations

from typing import Any

import pytest

from mlsteward.api import model as api_model
from mlsteward.training import errors, policy


def _spec(**changes: Any) -> api_model.ModelSpec:
    document: dict[str, Any] = {
        "task": "classification",
        "dataset": {"uri": "/d.csv", "target": "y", "features": ["income"], "sensitive": ["region"]},
        "estimator": {"className": "LogisticRegression"},
    }
    document.update(changes)
    return api_model.ModelSpec.model_validate(document)


@pytest.mark.parametrize(
    "column", ["sex", "Gender", "marital-status", "Date of Birth", "ETHNICITY", "nationality"]
)
def test_protected_names_and_synonyms_are_refused(column: str) -> None:
    with pytest.raises(errors.PolicyViolationError, match=column):
        policy.enforce(["income", column], _spec(), "the ONNX graph's inputs")


@pytest.mark.parametrize("column", ["average_balance", "usage", "income", "sexton_score"])
def test_names_that_only_contain_a_protected_word_are_allowed(column: str) -> None:
    assert policy.violations([column], _spec()) == []


def test_sensitive_and_additional_columns_are_refused_and_exceptions_admit_only_their_attribute() -> None:
    spec = _spec(
        protectedAttributes={
            "additional": ["zip_code"],
            "exceptions": [
                {"attribute": "age", "approvalRef": "ok-1", "justification": "Statistically sound."}
            ],
        }
    )

    found = {v.column for v in policy.violations(["age", "region", "zip_code", "sex"], spec)}

    assert found == {"region", "zip_code", "sex"}
    assert policy.exceptions_used(["age", "income"], spec)[0]["approvalRef"] == "ok-1"


def test_the_none_preset_still_refuses_sensitive_columns() -> None:
    spec = _spec(protectedAttributes={"preset": "none"})

    assert [v.column for v in policy.violations(["sex", "region"], spec)] == ["region"]
