"""Group fairness numbers and the passed / failed / inconclusive decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsteward.api import model as api_model
from mlsteward.training import fairness


def _groups(sizes: dict[str, int]) -> np.ndarray:
    return np.asarray([g for g, n in sizes.items() for _ in range(n)], dtype=object)


def test_selection_rates_and_gaps_are_computed_per_group() -> None:
    groups = _groups({"F": 100, "M": 100})
    predicted = np.r_[np.arange(100) < 40, np.arange(100) < 20]
    truth = np.r_[np.arange(100) < 50, np.arange(100) < 50]
    gates = api_model.FairnessGates(min_demographic_parity_ratio=0.8, min_group_size=30)

    report = fairness.column_report(groups, truth, predicted, gates)

    assert report["groups"]["F"]["selection_rate"] == pytest.approx(0.4)
    assert report["groups"]["M"]["selection_rate"] == pytest.approx(0.2)
    assert report["demographic_parity_difference"] == pytest.approx(0.2)
    assert report["demographic_parity_ratio"] == pytest.approx(0.5)
    assert report["equalized_odds_difference"] == pytest.approx(0.4)  # TPR 0.8 vs 0.4
    assert report["status"] == "failed"


def test_a_group_below_the_minimum_size_makes_a_passing_result_inconclusive() -> None:
    groups = _groups({"a": 100, "b": 100, "c": 5})
    predicted = np.zeros(205, dtype=bool)
    predicted[::5] = True
    truth = np.zeros(205, dtype=bool)
    gates = api_model.FairnessGates(max_demographic_parity_difference=0.5, min_group_size=30)

    report = fairness.column_report(groups, truth, predicted, gates)

    assert report["small_groups"] == ["c"] and report["status"] == "inconclusive"


def test_a_failure_among_large_groups_is_failed_even_with_a_small_group() -> None:
    groups = _groups({"a": 100, "b": 100, "c": 5})
    predicted = np.r_[np.ones(100, dtype=bool), np.zeros(105, dtype=bool)]
    gates = api_model.FairnessGates(max_demographic_parity_difference=0.1, min_group_size=30)

    report = fairness.column_report(groups, np.zeros(205, dtype=bool), predicted, gates)

    assert report["status"] == "failed"


def test_no_gates_means_passed_and_overall_takes_the_worst() -> None:
    gates = api_model.FairnessGates()
    report = fairness.column_report(
        _groups({"a": 50, "b": 50}), np.zeros(100, bool), np.zeros(100, bool), gates
    )

    assert report["status"] == "passed"
    assert (
        fairness.overall({"x": {"status": "passed"}, "y": {"status": "inconclusive"}}, gates)
        == "inconclusive"
    )
    assert fairness.overall({}, api_model.FairnessGates(min_demographic_parity_ratio=0.8)) == "inconclusive"


def test_a_many_valued_numeric_column_is_grouped_into_quartile_bands() -> None:
    ages = pd.Series(np.r_[np.arange(20, 100), [np.nan]])

    labels = fairness.group_labels(ages)

    assert len(set(labels[:-1])) == 4 and labels[-1] == fairness.MISSING_GROUP
    assert labels[0].startswith("<") and labels[-2].startswith(">=")
    assert list(fairness.group_labels(pd.Series([1.0, 2.0, 1.0]))) == ["1", "2", "1"]
