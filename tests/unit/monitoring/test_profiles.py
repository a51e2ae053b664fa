"""The reference profile: the §2 format, built and parsed."""

from __future__ import annotations

import copy
import re
from typing import Any

import numpy as np
import pytest

from mlsteward.monitoring import profiles, profiling


def test_a_numeric_summary_follows_the_contract_layout_on_a_hand_computed_example() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan])

    summary = profiling.numeric_summary(values, bins=4)

    assert summary["edges"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    # [below, [1,2), [2,3), [3,4), [4,5] (the last bin holds the maximum), above, missing]
    assert summary["counts"] == [0, 1, 1, 1, 2, 0, 1]
    assert summary["mean"] == 3.0
    assert summary["std"] == pytest.approx(np.std([1, 2, 3, 4, 5]))


def test_a_categorical_summary_ranks_by_count_then_value_and_keeps_fifty() -> None:
    values: list[object] = [f"v{i:02d}" for i in range(60) for _ in range(60 - i)] + ["b", "a", "a", None]

    summary = profiling.categorical_summary(values)

    assert len(summary["categories"]) == 50
    assert summary["categories"][:3] == ["v00", "v01", "v02"]
    assert summary["counts"][:3] == [60, 59, 58]
    other = sum(60 - i for i in range(50, 60)) + 3  # v50..v59, and "a", "b"
    assert summary["counts"][-3:] == [other, 0, 1]


def test_a_built_profile_parses_into_columns_in_order(reference_document: dict[str, Any]) -> None:
    reference = profiles.parse_reference(reference_document, None)

    assert [c.name for c in reference.features] == [
        "age", "income", "balance", "tenure", "purpose", "region", "channel",
    ]  # fmt: skip
    assert reference.task == "classification"
    assert reference.positive_class == "1"
    assert reference.prediction_score is not None
    assert reference.prediction_score.kind == "numeric"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(schema="other/v1"), "profile.schema"),
        (lambda d: d["features"]["age"].update(edges=[3.0, 2.0, 1.0]), "strictly increasing"),
        (lambda d: d["features"]["age"].update(counts=[1, 2]), "len(edges) + 2"),
        (lambda d: d["features"]["purpose"].update(categories=["a"]), "len(categories) + 3"),
        (lambda d: d["features"]["purpose"].update(kind="text"), "kind"),
        (lambda d: d.update(rows=0), "profile.rows"),
    ],
)
def test_a_profile_that_breaks_the_contract_is_refused_with_the_path_in_the_message(
    reference_document: dict[str, Any], mutate: Any, message: str
) -> None:
    document = copy.deepcopy(reference_document)
    mutate(document)

    with pytest.raises(profiles.ProfileError, match=re.escape(message)):
        profiles.parse_reference(document, None)


def test_a_schema_that_disagrees_with_the_profile_on_a_kind_is_refused(
    reference_document: dict[str, Any],
) -> None:
    schema = {"task": "classification", "features": [{"name": "age", "kind": "categorical"}]}

    with pytest.raises(profiles.ProfileError, match="age"):
        profiles.parse_reference(reference_document, schema)
