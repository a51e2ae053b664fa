"""Mergeable summaries: the fast binning is exact, memory is fixed, merging is adding."""

from __future__ import annotations

import collections
from typing import Any

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st
from numpy.typing import NDArray

from mlsteward.monitoring import profiles, profiling, summaries


def _direct_counts(edges: NDArray[np.float64], values: NDArray[np.float64]) -> NDArray[np.int64]:
    """§2 by the book, one value at a time."""
    k = len(edges) - 1
    counts = np.zeros(k + 3, np.int64)
    for x in values:
        if np.isnan(x):
            counts[k + 2] += 1
        elif x < edges[0]:
            counts[0] += 1
        elif x > edges[-1]:
            counts[k + 1] += 1
        elif x == edges[-1]:
            counts[k] += 1
        else:
            counts[int(np.searchsorted(edges, x, side="right"))] += 1
    return counts


def _layout(edges_by_column: list[NDArray[np.float64]]) -> summaries.Layout:
    features: dict[str, profiles.ColumnReference] = {}
    for i, edges in enumerate(edges_by_column):
        counts = np.ones(len(edges) + 2, np.int64)
        features[f"x{i}"] = profiles.NumericReference(f"x{i}", edges, counts, 0.0, 1.0)
    reference = profiles.Reference(100, tuple(features.values()), None, None, "regression", None, ())
    return summaries.Layout(reference)


def test_binning_agrees_with_the_contract_on_edges_extremes_and_missing_values() -> None:
    rng = np.random.default_rng(0)
    edges = np.unique(np.quantile(rng.normal(size=1000), np.linspace(0, 1, 11)))
    values = np.concatenate(
        [rng.normal(size=5000), edges, [edges[0] - 1, edges[-1] + 1, np.nan, np.nan], edges[-1:] * 1.0]
    )
    layout = _layout([edges])
    summary = summaries.Summary.empty(layout)

    layout.bin_numeric(values[:, None], summary)

    np.testing.assert_array_equal(summary.counts, _direct_counts(edges, values))
    present = values[~np.isnan(values)]
    assert summary.sums[0] == pytest.approx(np.sum(present[present < edges[0]]))
    assert summary.sums[len(edges)] == pytest.approx(np.sum(present[present > edges[-1]]))
    assert summary.sums[-1] == 0.0  # missing values add nothing


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    edges=st.lists(
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=2, max_size=12, unique=True
    ).map(lambda e: np.array(sorted(e))),
    data=st.data(),
)
def test_the_lookup_table_binning_is_exact_for_any_edges(edges: NDArray[np.float64], data: Any) -> None:
    # Values drawn near, on and between edges, including pathological spacing.
    pool = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    picks = data.draw(
        st.lists(st.sampled_from(pool.tolist()) | st.floats(-2e6, 2e6), min_size=1, max_size=200)
    )
    values = np.array(picks, dtype=np.float64)
    layout = _layout([edges])
    summary = summaries.Summary.empty(layout)

    layout.bin_numeric(values[:, None], summary)

    np.testing.assert_array_equal(summary.counts, _direct_counts(edges, values))


def test_several_numeric_columns_are_binned_together_into_their_own_slices() -> None:
    rng = np.random.default_rng(1)
    edges = [np.array([0.0, 1.0, 2.0]), np.array([-5.0, 0.0, 5.0, 10.0]), np.array([100.0, 1e9])]
    block = np.column_stack([rng.normal(1, 1, 500), rng.normal(0, 8, 500), rng.uniform(0, 2e9, 500)])
    block[::7, 1] = np.nan
    layout = _layout(edges)
    summary = summaries.Summary.empty(layout)

    layout.bin_numeric(block, summary)

    for j, column in enumerate(layout.columns):
        np.testing.assert_array_equal(summary.column(column), _direct_counts(edges[j], block[:, j]))


def test_merging_summaries_equals_summarising_all_rows_at_once(reference: profiles.Reference) -> None:
    layout = summaries.Layout(reference)
    rng = np.random.default_rng(2)
    block = rng.normal(40, 15, size=(1000, len(layout.numeric)))
    whole = summaries.Summary.empty(layout)
    layout.bin_numeric(block, whole)
    parts = [summaries.Summary.empty(layout) for _ in range(4)]
    for i, part in enumerate(parts):
        layout.bin_numeric(block[i * 250 : (i + 1) * 250], part)

    merged = summaries.merge(parts, layout)

    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_allclose(merged.sums, whole.sums)


def test_unknown_categories_go_to_unseen_when_the_reference_lists_every_value() -> None:
    document = profiling.categorical_summary(["a", "b", "b"])
    reference = profiles.parse_reference(
        {
            "schema": profiles.PROFILE_SCHEMA,
            "rows": 3,
            "features": {"c": document},
            "prediction": {"label": None, "score": None},
        }
    )
    layout = summaries.Layout(reference)
    summary = summaries.Summary.empty(layout)

    layout.bin_categorical(layout.columns[0], collections.Counter(["b", "z", None, "a", "z"]), summary)

    assert layout.columns[0].bucket_names() == ("b", "a", "<other>", "<unseen>", "<missing>")
    assert summary.counts.tolist() == [1, 1, 0, 2, 1]


def test_unknown_categories_go_to_other_when_the_reference_had_more_than_it_lists() -> None:
    values = [f"v{i}" for i in range(55)]
    reference = profiles.parse_reference(
        {
            "schema": profiles.PROFILE_SCHEMA,
            "rows": 55,
            "features": {"c": profiling.categorical_summary(values)},
            "prediction": {"label": None, "score": None},
        }
    )
    layout = summaries.Layout(reference)
    summary = summaries.Summary.empty(layout)

    layout.bin_categorical(layout.columns[0], collections.Counter(["never-seen"]), summary)

    assert summary.counts[-3] == 1  # <other>: cannot tell a rare training value from a new one


def test_memory_does_not_grow_with_the_rows_summarised(reference: profiles.Reference) -> None:
    layout = summaries.Layout(reference)
    summary = summaries.Summary.empty(layout)
    size = summary.counts.nbytes + summary.sums.nbytes
    rng = np.random.default_rng(3)

    for _ in range(20):
        layout.bin_numeric(rng.normal(size=(5000, len(layout.numeric))), summary)

    assert summary.counts.nbytes + summary.sums.nbytes == size
    assert summary.counts.sum() == 20 * 5000 * len(layout.numeric)
