"""The reference profile's numeric and categorical summaries, checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from mlsteward.training import profiles


def _brute_counts(values: np.ndarray, edges: list[float]) -> list[int]:
    present = values[~np.isnan(values)]
    inner = []
    for i in range(1, len(edges)):
        low, high = edges[i - 1], edges[i]
        last = i == len(edges) - 1
        inner.append(int(np.sum((present >= low) & ((present <= high) if last else (present < high)))))
    return [
        int(np.sum(present < edges[0])),
        *inner,
        int(np.sum(present > edges[-1])),
        int(np.isnan(values).sum()),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numeric_bins_match_the_quantile_definition_and_count_every_row(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.round(rng.lognormal(3, 1, size=5000), 1)  # ties on purpose
    values[rng.random(5000) < 0.05] = np.nan

    summary = profiles.numeric_summary(values)

    present = values[~np.isnan(values)]
    expected_edges = np.unique(np.quantile(present, np.linspace(0, 1, 11)))
    assert summary["edges"] == pytest.approx(expected_edges.tolist(), rel=1e-12)
    assert summary["edges"][0] == present.min() and summary["edges"][-1] == present.max()
    assert summary["counts"] == _brute_counts(values, summary["edges"])
    assert len(summary["counts"]) == len(summary["edges"]) + 2 and sum(summary["counts"]) == 5000
    assert summary["mean"] == pytest.approx(present.mean()) and summary["std"] == pytest.approx(present.std())


def test_a_constant_column_still_has_two_edges_and_one_full_bin() -> None:
    summary = profiles.numeric_summary(np.array([4.0, 4.0, 4.0, np.nan]))

    assert summary["edges"] == [4.0, 4.0]
    assert summary["counts"] == [0, 3, 0, 1]


def test_categories_rank_by_count_then_value_and_overflow_into_other() -> None:
    values = np.array(["b", "a", "b", "", "c", "a", "z"] + [f"v{i:02d}" for i in range(60)], dtype=object)

    summary = profiles.categorical_summary(values)

    assert summary["categories"][:2] == ["a", "b"] and len(summary["categories"]) == 50
    assert summary["counts"][-3:] == [14, 0, 1]  # 62 singletons, 48 kept: 14 in other; "" is missing
    assert sum(summary["counts"]) == len(values)


def test_the_prediction_score_is_the_positive_probability_for_binary_and_the_max_for_multiclass() -> None:
    binary = np.array([[0.9, 0.1], [0.2, 0.8]])
    multi = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])

    assert profiles.score_values("classification", binary).tolist() == [0.1, 0.8]
    assert profiles.score_values("classification", multi).tolist() == [0.5, 0.6]
    assert profiles.score_values("regression", np.array([1.5, 2.5])).tolist() == [1.5, 2.5]
