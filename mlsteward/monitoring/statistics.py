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
from typing import Literal

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
