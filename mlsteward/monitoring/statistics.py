"""Drift tests on binned counts: PSI, Kolmogorov-Smirnov, Jensen-Shannon, Wasserstein, chi-square.

Pure: no I/O, no clock, no environment. Every test takes the reference's and the current
window's bucket counts laid out as in docs/contracts.md §2 and returns an effect size (the
score that thresholds apply to) and, where one exists, a p-value for information only:
verdicts are decided by effect size, because on large windows every p-value is tiny.

Conventions (docs/monitoring.md states them for users):

- PSI: ``sum((q - p) * ln(q / p))`` over every bucket, where an empty bucket's share is
  replaced by ``PSI_EPSILON`` = 1e-4 on either side (Evidently's choice).
- KS: the largest gap between the two CDFs at bucket boundaries, over the ordered buckets
  ``below, b1..bk, above`` (missing values excluded); numerics only. Binned, so it is a
  lower bound of the raw-data statistic, exact at the reference's quantile edges.
- Jensen-Shannon: the distance (square root of the divergence), natural logarithm, so in
  ``[0, sqrt(ln 2)]``, like ``scipy.spatial.distance.jensenshannon`` and Evidently; all buckets.
- Wasserstein-1 between the two binned distributions (uniform inside inner bins, truncated
  exponentials inside wide tail bins, exact outside the training range, never below the
  mean difference; see ``wasserstein``), divided by the reference standard deviation like
  Evidently; missing values excluded.
- Chi-square: goodness of fit of the current counts to the reference shares; the score is
  Cohen's w = ``sqrt(chi2 / n)`` (0.1 small, 0.3 medium, 0.5 large), the p-value from the
  chi-square distribution with (non-empty buckets - 1) degrees of freedom.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

Test = Literal["psi", "ks", "jensen_shannon", "wasserstein", "chi_square"]
NUMERIC_TESTS: tuple[Test, ...] = ("wasserstein", "psi", "ks", "jensen_shannon")
CATEGORICAL_TESTS: tuple[Test, ...] = ("jensen_shannon", "psi", "chi_square")
PSI_EPSILON = 1e-4

Counts = NDArray[np.int64] | NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class Score:
    """One test's result: the effect size and, for KS and chi-square, a p-value."""

    value: float
    p_value: float | None = None


def shares(counts: Counts) -> NDArray[np.float64]:
    total = float(np.sum(counts))
    if total <= 0:
        return np.zeros(len(counts))
    return np.asarray(counts, dtype=np.float64) / total


def psi(reference: Counts, current: Counts) -> Score:
    p = shares(reference)
    q = shares(current)
    p = np.where(p == 0, PSI_EPSILON, p)
    q = np.where(q == 0, PSI_EPSILON, q)
    return Score(float(np.sum((q - p) * np.log(q / p))))


def jensen_shannon(reference: Counts, current: Counts) -> Score:
    p = shares(reference)
    q = shares(current)
    m = (p + q) / 2.0
    divergence = 0.5 * _kl(p, m) + 0.5 * _kl(q, m)
    return Score(math.sqrt(max(divergence, 0.0)))


def _kl(p: NDArray[np.float64], m: NDArray[np.float64]) -> float:
    nonzero = p > 0
    return float(np.sum(p[nonzero] * np.log(p[nonzero] / m[nonzero])))


def ks(reference: Counts, current: Counts) -> Score:
    """Numeric layout only: the last bucket (missing) is left out of both CDFs."""
    reference_ordered, current_ordered = reference[:-1], current[:-1]
    n, m = float(np.sum(reference_ordered)), float(np.sum(current_ordered))
    if n == 0 or m == 0:
        return Score(0.0, 1.0)
    statistic = float(np.max(np.abs(np.cumsum(shares(reference_ordered) - shares(current_ordered)))))
    return Score(statistic, _kolmogorov_sf(statistic * math.sqrt(n * m / (n + m))))


def wasserstein(
    reference: Counts,
    current: Counts,
    edges: NDArray[np.float64],
    *,
    current_sums: NDArray[np.float64],
    reference_std: float,
    reference_mean: float | None = None,
) -> Score:
    """Numeric layout ``[below, b1..bk, above, missing]``; normalised by ``reference_std``.

    The profile says how much mass each bin holds, not where inside it, so both sides get
    the same shape inside a bin: uniform in inner bins (the integral of the gap in closed
    form); in a tail bin more than twice as wide as its neighbour (an open-ended tail of a
    quantile grid), a truncated exponential decaying at the rate its neighbour's width
    implies. Equal counts therefore give 0 (also for discrete columns). Rows outside the
    training range count at their exact distance (``current_sums`` holds the sum of the
    current values in each bucket; the reference has no mass there by construction). The
    result is at least ``|mean difference|``, a lower bound of the distance that is exact
    from the profile's mean and the bucket sums.
    """
    ref = np.asarray(reference[:-1], np.float64)
    cur = np.asarray(current[:-1], np.float64)
    sums = np.asarray(current_sums[:-1], np.float64)
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref == 0 or n_cur == 0:
        return Score(0.0)
    k = len(edges) - 1
    gap = np.cumsum(ref / n_ref - cur / n_cur)  # F_ref - F_cur at e0-, e1, ..., ek
    widths = np.diff(edges)
    total = 0.0
    for i in range(k):
        neighbour = float(widths[1 if i == 0 else k - 2]) if k >= 3 else float(widths[i])
        if k >= 3 and i in (0, k - 1) and widths[i] > _WIDE_TAIL * neighbour:
            total += _tail_bin_integral(
                float(gap[i]), float(gap[i + 1]), float(widths[i]), neighbour, last=i == k - 1
            )
        else:
            total += widths[i] * _linear_gap_integral(float(gap[i]), float(gap[i + 1]))
    below = cur[0] * edges[0] - sums[0]
    above = sums[k + 1] - cur[k + 1] * edges[-1]
    total += (max(below, 0.0) + max(above, 0.0)) / n_cur
    if reference_mean is not None:
        total = max(total, abs(float(sums.sum()) / n_cur - reference_mean))
    scale = reference_std if reference_std > 0 else float(edges[-1] - edges[0]) or 1.0
    return Score(float(total / scale))


# A tail bin this many times wider than its neighbour is an open-ended tail; narrower ones
# (uniform data, a discrete column's last value) are treated as uniform like inner bins.
_WIDE_TAIL = 2.0
_UNIT_GRID = np.linspace(0.0, 1.0, 257)


def _linear_gap_integral(a: float, b: float) -> float:
    """Integral over [0, 1] of |a + (b - a) t|: a trapezoid, or two triangles if it crosses 0."""
    if a * b >= 0:
        return (abs(a) + abs(b)) / 2.0
    return (a * a + b * b) / (2.0 * (abs(a) + abs(b)))


def _tail_bin_integral(left: float, right: float, width: float, neighbour: float, *, last: bool) -> float:
    """Integral of |CDF gap| over a tail bin whose mass decays exponentially outward."""
    rate = math.log(2.0) / neighbour
    depths = _UNIT_GRID * width
    inward = np.expm1(-rate * depths) / math.expm1(-rate * width)  # share of the bin's mass within d
    inner, outer = (left, right) if last else (right, left)  # the gap moves from inner to outer
    gap = inner + (outer - inner) * inward
    return float(np.trapezoid(np.abs(gap), depths))


def chi_square(reference: Counts, current: Counts) -> Score:
    n = float(np.sum(current))
    if n == 0:
        return Score(0.0, 1.0)
    p = shares(reference)
    q = shares(current)
    used = (p > 0) | (q > 0)
    p_used = np.where(p[used] == 0, PSI_EPSILON, p[used])
    w_squared = float(np.sum((q[used] - p_used) ** 2 / p_used))
    dof = int(np.count_nonzero(used)) - 1
    p_value = _chi2_sf(n * w_squared, dof) if dof > 0 else 1.0
    return Score(math.sqrt(w_squared), p_value)


def run(
    test: Test,
    reference: Counts,
    current: Counts,
    *,
    edges: NDArray[np.float64] | None = None,
    current_sums: NDArray[np.float64] | None = None,
    reference_std: float = 1.0,
    reference_mean: float | None = None,
) -> Score:
    """Run one test by name (``edges`` is required for Wasserstein)."""
    if test == "psi":
        return psi(reference, current)
    if test == "jensen_shannon":
        return jensen_shannon(reference, current)
    if test == "ks":
        return ks(reference, current)
    if test == "chi_square":
        return chi_square(reference, current)
    if edges is None:
        raise ValueError("the Wasserstein distance needs the bucket edges")
    return wasserstein(
        reference,
        current,
        edges,
        current_sums=np.zeros(len(current)) if current_sums is None else current_sums,
        reference_std=reference_std,
        reference_mean=reference_mean,
    )


class NumericColumn(Protocol):
    """What ``NumericPanel`` needs of a numeric column's reference (``profiles.NumericReference``)."""

    @property
    def edges(self) -> NDArray[np.float64]: ...
    @property
    def counts(self) -> NDArray[np.int64]: ...
    @property
    def std(self) -> float: ...
    @property
    def mean(self) -> float | None: ...


class NumericPanel:
    """Every numeric test (``NUMERIC_TESTS``) for many columns at once, as matrix operations.

    The same formulas as ``psi``, ``ks``, ``jensen_shannon`` and ``wasserstein`` above (which stay
    the definitions; a unit test holds the two to 1e-12), evaluated for all numeric columns of a
    window in a few dozen numpy calls instead of a few dozen per column. Columns with fewer bins
    are padded to one width with empty buckets placed between the last bin and ``above``, where
    they change no result: an empty bucket on both sides adds nothing to PSI or Jensen-Shannon,
    repeats a CDF value for KS, and has zero width for Wasserstein.

    Column ``j`` reads ``counts[offsets[j] : offsets[j] + len(references[j].counts)]`` of the flat
    vectors ``scores`` is given (the layout of docs/contracts.md §2).
    """

    def __init__(self, offsets: Sequence[int], references: Sequence[NumericColumn]) -> None:
        self.columns = len(references)
        bins = [len(r.edges) - 1 for r in references]
        k_max = max(bins, default=1)
        width = k_max + 3  # below, k_max bins, above, missing
        self.index = np.full((self.columns, width), -1, np.intp)  # -1: the appended empty bucket
        self.edges_first = np.zeros(self.columns)
        self.edges_last = np.zeros(self.columns)
        self.widths = np.zeros((self.columns, k_max))
        self.scale = np.ones(self.columns)
        self.mean = np.zeros(self.columns)
        self.has_mean = np.zeros(self.columns, bool)
        self.bins = np.array(bins, np.intp)
        reference_index = np.full((self.columns, width), -1, np.intp)
        first_tail: list[int] = []
        last_tail: list[int] = []
        start = 0
        for j, (offset, ref) in enumerate(zip(offsets, references, strict=True)):
            k = bins[j]
            for index, base in ((self.index, offset), (reference_index, start)):
                index[j, : k + 1] = np.arange(base, base + k + 1)  # below, b1..bk
                index[j, width - 2] = base + k + 1  # above
                index[j, width - 1] = base + k + 2  # missing
            start += k + 3
            edges = np.asarray(ref.edges, np.float64)
            widths = np.diff(edges)
            self.widths[j, :k] = widths
            self.edges_first[j], self.edges_last[j] = edges[0], edges[-1]
            self.scale[j] = ref.std if ref.std > 0 else float(edges[-1] - edges[0]) or 1.0
            if ref.mean is not None:
                self.mean[j], self.has_mean[j] = ref.mean, True
            if k >= 3 and widths[0] > _WIDE_TAIL * widths[1]:
                first_tail.append(j)
            if k >= 3 and widths[k - 1] > _WIDE_TAIL * widths[k - 2]:
                last_tail.append(j)
        self.first_tail = np.array(first_tail, np.intp)
        self.last_tail = np.array(last_tail, np.intp)
        flat = np.concatenate([np.zeros(0), *(np.asarray(r.counts, np.float64) for r in references)])
        self.reference = np.append(flat, 0.0)[reference_index]

    def _gather(self, flat: Counts) -> NDArray[np.float64]:
        gathered: NDArray[np.float64] = np.append(np.asarray(flat, np.float64), 0.0)[self.index]
        return gathered

    def scores(self, counts: Counts, sums: NDArray[np.float64]) -> list[dict[Test, Score]]:
        """Every numeric test for every column, in ``NUMERIC_TESTS`` order."""
        current, current_sums = self._gather(counts), self._gather(sums)
        reference = self.reference
        p, q = _row_shares(reference), _row_shares(current)
        psi_values = _psi_rows(p, q)
        js_values = _js_rows(p, q)
        ks_values, ks_p = self._ks(reference[:, :-1], current[:, :-1])
        wasserstein_values = self._wasserstein(reference[:, :-1], current[:, :-1], current_sums[:, :-1])
        return [
            {
                "wasserstein": Score(float(wasserstein_values[j])),
                "psi": Score(float(psi_values[j])),
                "ks": Score(float(ks_values[j]), ks_p[j]),
                "jensen_shannon": Score(float(js_values[j])),
            }
            for j in range(self.columns)
        ]

    @staticmethod
    def _ks(
        reference: NDArray[np.float64], current: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], list[float]]:
        n, m = reference.sum(axis=1), current.sum(axis=1)
        statistic = np.max(np.abs(np.cumsum(_row_shares(reference) - _row_shares(current), axis=1)), axis=1)
        empty = (n == 0) | (m == 0)
        statistic[empty] = 0.0
        p_values = [
            1.0 if empty[j] else _kolmogorov_sf(float(statistic[j]) * math.sqrt(n[j] * m[j] / (n[j] + m[j])))
            for j in range(len(n))
        ]
        return statistic, p_values

    def _wasserstein(
        self, reference: NDArray[np.float64], current: NDArray[np.float64], sums: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        n_ref, n_cur = reference.sum(axis=1), current.sum(axis=1)
        empty = (n_ref == 0) | (n_cur == 0)
        safe_ref, safe_cur = np.where(empty, 1.0, n_ref), np.where(empty, 1.0, n_cur)
        k_max = self.widths.shape[1]
        gap = np.cumsum(reference / safe_ref[:, None] - current / safe_cur[:, None], axis=1)[:, : k_max + 1]
        left, right = gap[:, :-1], gap[:, 1:]
        parts = self.widths * _linear_gap_integrals(left, right)
        if len(self.first_tail):
            j = self.first_tail
            parts[j, 0] = _tail_bin_integrals(
                left[j, 0], right[j, 0], self.widths[j, 0], self.widths[j, 1], last=False
            )
        if len(self.last_tail):
            j = self.last_tail
            i = self.bins[j] - 1
            parts[j, i] = _tail_bin_integrals(
                left[j, i], right[j, i], self.widths[j, i], self.widths[j, i - 1], last=True
            )
        total = parts.sum(axis=1)
        below = current[:, 0] * self.edges_first - sums[:, 0]
        above = sums[:, -1] - current[:, -1] * self.edges_last
        total += (np.maximum(below, 0.0) + np.maximum(above, 0.0)) / safe_cur
        mean_gap = np.abs(sums.sum(axis=1) / safe_cur - self.mean)
        total = np.where(self.has_mean, np.maximum(total, mean_gap), total)
        return np.where(empty, 0.0, total / self.scale)


class CategoricalPanel:
    """Every categorical test (``CATEGORICAL_TESTS``) for many columns at once (see ``NumericPanel``);
    padding buckets are empty on both sides, which chi-square leaves out like any empty bucket."""

    def __init__(self, offsets: Sequence[int], references: Sequence[Counts]) -> None:
        self.columns = len(references)
        sizes = [len(r) for r in references]
        width = max(sizes, default=1)
        self.index = np.full((self.columns, width), -1, np.intp)
        reference_index = np.full((self.columns, width), -1, np.intp)
        start = 0
        for j, (offset, size) in enumerate(zip(offsets, sizes, strict=True)):
            self.index[j, :size] = np.arange(offset, offset + size)
            reference_index[j, :size] = np.arange(start, start + size)
            start += size
        flat = np.concatenate([np.zeros(0), *(np.asarray(r, np.float64) for r in references)])
        self.reference = np.append(flat, 0.0)[reference_index]

    def scores(self, counts: Counts) -> list[dict[Test, Score]]:
        """Every categorical test for every column, in ``CATEGORICAL_TESTS`` order."""
        current = np.append(np.asarray(counts, np.float64), 0.0)[self.index]
        p, q = _row_shares(self.reference), _row_shares(current)
        psi_values, js_values = _psi_rows(p, q), _js_rows(p, q)
        n = current.sum(axis=1)
        used = (p > 0) | (q > 0)
        p_used = np.where(p == 0, PSI_EPSILON, p)
        w_squared = np.sum(np.where(used, (q - p_used) ** 2 / p_used, 0.0), axis=1)
        dof = np.count_nonzero(used, axis=1) - 1
        results: list[dict[Test, Score]] = []
        for j in range(self.columns):
            if n[j] == 0:
                chi = Score(0.0, 1.0)
            else:
                w2 = float(w_squared[j])
                chi = Score(math.sqrt(w2), _chi2_sf(float(n[j]) * w2, int(dof[j])) if dof[j] > 0 else 1.0)
            results.append(
                {
                    "jensen_shannon": Score(float(js_values[j])),
                    "psi": Score(float(psi_values[j])),
                    "chi_square": chi,
                }
            )
        return results


def _row_shares(counts: NDArray[np.float64]) -> NDArray[np.float64]:
    """``shares`` of every row of a matrix (an all-zero row stays zero)."""
    total = counts.sum(axis=1, keepdims=True)
    result: NDArray[np.float64] = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    return result


def _psi_rows(p: NDArray[np.float64], q: NDArray[np.float64]) -> NDArray[np.float64]:
    p = np.where(p == 0, PSI_EPSILON, p)
    q = np.where(q == 0, PSI_EPSILON, q)
    result: NDArray[np.float64] = np.sum((q - p) * np.log(q / p), axis=1)
    return result


def _js_rows(p: NDArray[np.float64], q: NDArray[np.float64]) -> NDArray[np.float64]:
    m = (p + q) / 2.0
    safe_m = np.where(m > 0, m, 1.0)
    kl_p = np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / safe_m), 0.0), axis=1)
    kl_q = np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0) / safe_m), 0.0), axis=1)
    result: NDArray[np.float64] = np.sqrt(np.maximum(0.5 * kl_p + 0.5 * kl_q, 0.0))
    return result


def _linear_gap_integrals(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """``_linear_gap_integral`` element-wise."""
    magnitude = np.abs(a) + np.abs(b)
    crossing = a * b < 0
    safe = np.where(crossing, magnitude, 1.0)
    return np.where(crossing, (a * a + b * b) / (2.0 * safe), magnitude / 2.0)


def _tail_bin_integrals(
    left: NDArray[np.float64],
    right: NDArray[np.float64],
    width: NDArray[np.float64],
    neighbour: NDArray[np.float64],
    *,
    last: bool,
) -> NDArray[np.float64]:
    """``_tail_bin_integral`` for several bins at once (one per row)."""
    rate = (math.log(2.0) / neighbour)[:, None]
    depths = _UNIT_GRID[None, :] * width[:, None]
    inward = np.expm1(-rate * depths) / np.expm1(-rate * width[:, None])
    inner, outer = (left, right) if last else (right, left)
    gap = inner[:, None] + (outer - inner)[:, None] * inward
    result: NDArray[np.float64] = np.trapezoid(np.abs(gap), depths, axis=1)
    return result


def _kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (the asymptotic two-sample KS p-value)."""
    if x < 0.2:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * x * x)
        total += -term if k % 2 == 0 else term
        if term < 1e-17:  # the rest of the alternating series is smaller still
            break
    return min(max(2.0 * total, 0.0), 1.0)


def _chi2_sf(statistic: float, dof: int) -> float:
    """Upper tail of the chi-square distribution: the regularised upper incomplete gamma."""
    return _gamma_q(dof / 2.0, statistic / 2.0)


def _gamma_q(a: float, x: float) -> float:
    if x <= 0:
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:  # series for P(a, x), then Q = 1 - P
        term = total = 1.0 / a
        denominator = a
        for _ in range(1000):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    # Lentz's continued fraction for Q(a, x).
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)
