"""Drift tests on binned counts against direct numpy/scipy computations.

Tolerances: PSI, Jensen-Shannon, chi-square and the p-values are the same formulas on the
same counts, so they agree to 1e-9. KS and Wasserstein are compared with scipy on the raw
rows: binned KS is never above the raw statistic and at most one bucket's share below it;
binned Wasserstein is within 0.03 reference standard deviations of the raw distance for
location shifts, skewed and discrete columns, and rows past the training range; when a
symmetric distribution widens it reads up to 30% low (the profile does not say where the
mass sits inside the wide tail bins).
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats
from scipy.spatial import distance

from mlsteward.monitoring import profiles, profiling, statistics, summaries, verdicts


def _binned(
    reference: NDArray[np.float64], current: NDArray[np.float64]
) -> tuple[profiles.NumericReference, summaries.Summary]:
    document = profiling.numeric_summary(reference)
    column = profiles.parse_reference(
        {"schema": profiles.PROFILE_SCHEMA, "rows": len(reference), "features": {"x": document},
         "prediction": {"label": None, "score": None}}
    )  # fmt: skip
    layout = summaries.Layout(column)
    summary = summaries.Summary.empty(layout)
    layout.bin_numeric(current[:, None], summary)
    ref = layout.columns[0].reference
    assert isinstance(ref, profiles.NumericReference)
    return ref, summary


def _wasserstein(ref: profiles.NumericReference, summary: summaries.Summary) -> float:
    return statistics.wasserstein(
        ref.counts,
        summary.counts,
        ref.edges,
        current_sums=summary.sums,
        reference_std=ref.std,
        reference_mean=ref.mean,
    ).value


RNG = np.random.default_rng(7)
REFERENCE = np.array([4000, 3000, 2000, 1000, 0, 0])
CURRENT = np.array([300, 500, 100, 50, 40, 10])


def test_psi_is_the_textbook_formula_with_the_documented_epsilon_for_empty_buckets() -> None:
    p = REFERENCE / REFERENCE.sum()
    q = CURRENT / CURRENT.sum()
    p = np.where(p == 0, 1e-4, p)

    expected = float(np.sum((q - p) * np.log(q / p)))

    assert statistics.psi(REFERENCE, CURRENT).value == pytest.approx(expected, abs=1e-9)


def test_jensen_shannon_matches_scipy_on_the_same_buckets() -> None:
    expected = distance.jensenshannon(REFERENCE / REFERENCE.sum(), CURRENT / CURRENT.sum())

    assert statistics.jensen_shannon(REFERENCE, CURRENT).value == pytest.approx(expected, abs=1e-9)


def test_chi_square_matches_scipy_goodness_of_fit_where_the_reference_has_mass() -> None:
    reference = np.array([400, 300, 200, 100])
    current = np.array([30, 50, 12, 8])
    expected = stats.chisquare(current, reference / reference.sum() * current.sum())

    score = statistics.chi_square(reference, current)

    assert score.value == pytest.approx(np.sqrt(expected.statistic / current.sum()), abs=1e-9)
    assert score.p_value == pytest.approx(expected.pvalue, abs=1e-9)


@pytest.mark.parametrize(("statistic", "dof"), [(0.5, 1), (3.0, 4), (25.0, 10), (200.0, 52), (1e-3, 3)])
def test_the_chi_square_tail_matches_scipy(statistic: float, dof: int) -> None:
    assert statistics._chi2_sf(statistic, dof) == pytest.approx(stats.chi2.sf(statistic, dof), abs=1e-9)


@pytest.mark.parametrize("x", [0.3, 0.8, 1.2, 2.0, 3.5])
def test_the_kolmogorov_tail_matches_scipy(x: float) -> None:
    assert statistics._kolmogorov_sf(x) == pytest.approx(stats.kstwobign.sf(x), abs=1e-9)


@pytest.mark.parametrize("shift", [0.0, 0.2, 0.5, 1.0])
def test_binned_ks_is_a_close_lower_bound_of_the_raw_statistic(shift: float) -> None:
    reference = RNG.normal(size=20_000)
    current = RNG.normal(shift, 1.0, 5_000)
    ref, summary = _binned(reference, current)

    binned = statistics.ks(ref.counts, summary.counts).value
    raw = stats.ks_2samp(reference, current).statistic

    assert binned <= raw + 1e-9
    assert raw - binned <= 0.1  # at most about one decile bucket's share


@pytest.mark.parametrize(
    ("make_reference", "make_current"),
    [
        (lambda: RNG.normal(size=20_000), lambda: RNG.normal(0.0, 1.0, 5_000)),
        (lambda: RNG.normal(size=20_000), lambda: RNG.normal(0.1, 1.0, 5_000)),
        (lambda: RNG.normal(size=20_000), lambda: RNG.normal(0.5, 1.0, 5_000)),
        (lambda: RNG.lognormal(0, 0.7, 20_000), lambda: RNG.lognormal(0.2, 0.7, 5_000)),
        (lambda: RNG.uniform(0, 1, 20_000), lambda: RNG.uniform(0.1, 1.3, 5_000)),
        (lambda: RNG.exponential(1.0, 20_000), lambda: RNG.exponential(1.5, 5_000)),
        (lambda: RNG.poisson(0.6, 20_000) * 1.0, lambda: RNG.poisson(0.6, 5_000) * 1.0),
        (lambda: RNG.poisson(0.6, 20_000) * 1.0, lambda: RNG.poisson(0.9, 5_000) * 1.0),
    ],
)
def test_binned_wasserstein_is_within_three_hundredths_of_a_deviation_of_scipy_on_raw_rows(
    make_reference: object, make_current: object
) -> None:
    assert callable(make_reference) and callable(make_current)
    reference, current = make_reference(), make_current()
    ref, summary = _binned(reference, current)

    raw = stats.wasserstein_distance(reference, current) / np.std(reference)

    assert _wasserstein(ref, summary) == pytest.approx(raw, abs=0.03)


@pytest.mark.parametrize("spread", [1.2, 1.5])
def test_binned_wasserstein_reads_a_widening_at_most_thirty_percent_low(spread: float) -> None:
    reference = RNG.normal(size=20_000)
    current = RNG.normal(0.0, spread, 5_000)
    ref, summary = _binned(reference, current)

    raw = stats.wasserstein_distance(reference, current) / np.std(reference)

    assert 0.7 * raw <= _wasserstein(ref, summary) <= raw + 0.01


def test_rows_past_the_training_maximum_count_at_their_true_distance() -> None:
    reference = RNG.normal(size=20_000)
    current = RNG.normal(size=5_000)
    current[:250] = reference.max() + 3.0  # 5% of rows far past the maximum
    ref, summary = _binned(reference, current)

    raw = stats.wasserstein_distance(reference, current) / np.std(reference)

    assert _wasserstein(ref, summary) == pytest.approx(raw, abs=0.04)
    assert _wasserstein(ref, summary) > 0.1


def test_the_edge_buckets_catch_five_percent_past_the_maximum_that_plain_bins_miss() -> None:
    reference = RNG.normal(size=20_000)
    current = RNG.normal(size=20_000)
    past = RNG.random(20_000) < 0.05
    current[past] = reference.max() + RNG.uniform(0.1, 1.0, int(past.sum()))
    ref, summary = _binned(reference, current)
    clipped = summary.counts.copy()
    k = len(ref.edges) - 1
    clipped[k] += clipped[k + 1]  # what a histogram without the edge buckets would see
    clipped[k + 1] = 0

    assert statistics.psi(ref.counts, summary.counts).value > 0.25
    assert statistics.psi(ref.counts, clipped).value < 0.1


def test_missing_values_are_left_out_of_ks_and_wasserstein_but_not_of_psi() -> None:
    reference = RNG.normal(size=20_000)
    current = RNG.normal(size=5_000)
    with_missing = np.concatenate([current, np.full(5_000, np.nan)])
    ref, plain = _binned(reference, current)
    _, missing = _binned(reference, with_missing)

    assert statistics.ks(ref.counts, missing.counts).value == pytest.approx(
        statistics.ks(ref.counts, plain.counts).value
    )
    assert _wasserstein(ref, missing) == pytest.approx(_wasserstein(ref, plain))
    assert statistics.psi(ref.counts, missing.counts).value > 1.0


def test_identical_distributions_score_zero_on_every_test() -> None:
    counts = np.array([0, 10, 20, 30, 0, 5])
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    sums = counts * 3 * np.array([0.0, 0.5, 1.5, 2.5, 0.0, 0.0])  # uniform inside each bin
    for test in statistics.NUMERIC_TESTS:
        score = statistics.run(test, counts, counts * 3, edges=edges, current_sums=sums, reference_std=1.0)
        assert score.value == pytest.approx(0.0, abs=1e-6), test
    assert statistics.chi_square(counts, counts * 3).value == pytest.approx(0.0, abs=1e-12)


def _mixed_layout(rng: np.random.Generator) -> summaries.Layout:
    """Columns of every shape the panels pad: 10 quantile bins with wide tails, few bins (a
    discrete column, a constant one), skewed, and categoricals of different sizes."""
    data: dict[str, NDArray[Any] | list[str]] = {
        "normal": rng.normal(0.0, 1.0, 5_000),
        "skewed": rng.lognormal(0.0, 1.0, 5_000),
        "exponential": rng.exponential(2.0, 5_000),
        "discrete": rng.integers(0, 3, 5_000).astype(float),
        "two_values": rng.integers(0, 2, 5_000).astype(float),
        "constant": np.full(5_000, 4.0),
        "uniform": rng.uniform(-1.0, 1.0, 5_000),
        "small": rng.choice(["a", "b"], 5_000).tolist(),
        "large": rng.choice([f"v{i}" for i in range(30)], 5_000).tolist(),
    }
    score = rng.beta(2.0, 2.0, 5_000)
    document = profiling.profile(
        data, prediction_label=["1" if s >= 0.5 else "0" for s in score], prediction_score=score
    )
    return summaries.Layout(profiles.parse_reference(document))


@pytest.mark.parametrize("case", ["same", "shifted", "empty", "one_row", "all_missing"])
def test_all_columns_at_once_give_what_each_column_alone_gives(case: str) -> None:
    rng = np.random.default_rng(11)
    layout = _mixed_layout(rng)
    summary = summaries.Summary.empty(layout)
    rows = {"same": 3_000, "shifted": 3_000, "empty": 0, "one_row": 1, "all_missing": 50}[case]
    if rows:
        block = rng.normal(0.0, 1.0, (rows, len(layout.numeric))) * (3.0 if case == "shifted" else 1.0)
        block[rng.random(block.shape) < 0.05] = np.nan
        if case == "shifted":
            block[: rows // 10] = 40.0  # past every training maximum
        if case == "all_missing":
            block[:, 0] = np.nan
        layout.bin_numeric(block, summary)
        for column in layout.categorical:
            ref = column.reference
            assert isinstance(ref, profiles.CategoricalReference)
            choices = np.array(
                [*ref.categories[: 1 if case == "shifted" else None], "new", None], dtype=object
            )
            layout.bin_categorical(column, collections.Counter(rng.choice(choices, rows).tolist()), summary)
        summary.rows = rows

    together = verdicts.Scorer(layout).score(summary)

    for column in layout.columns:
        alone = verdicts.score_column(column, summary)
        assert list(together[column.key]) == list(alone), column.key
        for test, score in alone.items():
            assert together[column.key][test].value == pytest.approx(score.value, rel=1e-12, abs=1e-12), (
                column.key,
                test,
            )
            if score.p_value is None:
                assert together[column.key][test].p_value is None
            else:
                assert together[column.key][test].p_value == pytest.approx(score.p_value, rel=1e-9, abs=1e-12)
