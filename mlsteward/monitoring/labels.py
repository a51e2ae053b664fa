"""Delayed ground truth: a bounded join buffer and mergeable performance counts.

Pure: no I/O, no clock (callers pass ``now`` in seconds), no environment.

The server's batches carry a request id per row; the buffer remembers each row's prediction
until its label arrives (``POST /v1/labels``), it expires (``label_timeout``) or the buffer is
full (the oldest rows go first). A joined label is added to the performance counts of the
pane in progress, so accuracy, ROC AUC and RMSE cover the labels that arrived in the window.

ROC AUC comes from score histograms (``AUC_BINS`` equal bins on [0, 1]): ties inside a bin
count a half, so the error is at most the share of positive/negative pairs in the same bin
(under 0.002 for smooth scores).

Each remembered row keeps the model version that answered it, so the monitor also counts
performance per version (the canary analysis compares the canary's with the stable one's).

Usage::

    buffer = JoinBuffer(capacity=100_000, timeout_s=86400.0)
    buffer.remember(ids, labels, scores, now, version="3")
    positions, predicted, scores, versions = buffer.join(request_ids, now)
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

AUC_BINS = 1000


@dataclasses.dataclass
class PerformanceCounts:
    """What the window knows about quality; add two to combine windows or panes."""

    labeled: int = 0
    correct: int = 0
    squared_error: float = 0.0
    absolute_error: float = 0.0
    positives: NDArray[np.int64] = dataclasses.field(default_factory=lambda: np.zeros(AUC_BINS, np.int64))
    negatives: NDArray[np.int64] = dataclasses.field(default_factory=lambda: np.zeros(AUC_BINS, np.int64))

    def add(self, other: PerformanceCounts) -> None:
        self.labeled += other.labeled
        self.correct += other.correct
        self.squared_error += other.squared_error
        self.absolute_error += other.absolute_error
        self.positives += other.positives
        self.negatives += other.negatives

    def add_classification(
        self,
        predicted: Sequence[str | None],
        truth: Sequence[str],
        scores: Sequence[float | None],
        positive: str | None,
    ) -> None:
        self.labeled += len(truth)
        self.correct += sum(p == t for p, t in zip(predicted, truth, strict=True))
        if positive is None:
            return
        for score, label in zip(scores, truth, strict=True):
            if score is None or math.isnan(score):
                continue
            cell = min(max(int(score * AUC_BINS), 0), AUC_BINS - 1)
            if label == positive:
                self.positives[cell] += 1
            else:
                self.negatives[cell] += 1

    def add_regression(self, predicted: Sequence[float | None], truth: Sequence[float]) -> None:
        for value, target in zip(predicted, truth, strict=True):
            if value is None or math.isnan(value):
                continue
            error = value - target
            self.labeled += 1
            self.squared_error += error * error
            self.absolute_error += abs(error)


@dataclasses.dataclass(frozen=True)
class Performance:
    """Quality over a window; ``None`` where it cannot be computed yet."""

    labeled: int
    accuracy: float | None
    roc_auc: float | None
    rmse: float | None
    mae: float | None


def report(counts: PerformanceCounts, task: str) -> Performance:
    if counts.labeled == 0:
        return Performance(0, None, None, None, None)
    if task == "regression":
        return Performance(
            counts.labeled,
            None,
            None,
            math.sqrt(counts.squared_error / counts.labeled),
            counts.absolute_error / counts.labeled,
        )
    return Performance(counts.labeled, counts.correct / counts.labeled, roc_auc(counts), None, None)


def roc_auc(counts: PerformanceCounts) -> float | None:
    """P(score of a positive > score of a negative), ties (same bin) counting a half."""
    n_pos, n_neg = int(counts.positives.sum()), int(counts.negatives.sum())
    if n_pos == 0 or n_neg == 0:
        return None
    negatives_below = np.cumsum(counts.negatives) - counts.negatives
    wins = float(np.sum(counts.positives * negatives_below)) + 0.5 * float(
        np.sum(counts.positives * counts.negatives)
    )
    return wins / (n_pos * n_neg)


# (time remembered, predicted label, score, model version): a tuple, because one is made per row.
_Pending = tuple[float, str | None, float | None, str]


class JoinBuffer:
    """Predictions waiting for their labels: bounded in size and in age."""

    def __init__(self, capacity: int, timeout_s: float) -> None:
        self.capacity = capacity
        self.timeout_s = timeout_s
        self.expired = 0
        self.evicted = 0
        self._pending: collections.OrderedDict[str, _Pending] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def remember(
        self,
        request_ids: Sequence[str],
        labels: Sequence[str | None] | None,
        scores: Sequence[float | None] | None,
        now: float,
        version: str = "",
    ) -> None:
        if self.capacity == 0:
            return
        n = len(request_ids)
        label_list: Sequence[str | None] = labels if labels is not None else [None] * n
        score_list: Sequence[float | None] = scores if scores is not None else [None] * n
        pending = self._pending
        pending.update(
            zip(
                request_ids,
                zip(itertools.repeat(now), label_list, score_list, itertools.repeat(version), strict=False),
                strict=False,
            )
        )
        overflow = len(pending) - self.capacity
        for _ in range(max(overflow, 0)):
            pending.popitem(last=False)
        self.evicted += max(overflow, 0)
        self.expire(now)

    def expire(self, now: float) -> None:
        pending = self._pending
        deadline = now - self.timeout_s
        while pending:
            oldest = next(iter(pending.values()))
            if oldest[0] >= deadline:
                break
            pending.popitem(last=False)
            self.expired += 1

    def join(
        self, request_ids: Sequence[str], now: float
    ) -> tuple[list[int], list[str | None], list[float | None], list[str]]:
        """Take the rows whose request ids are known: their positions, labels, scores and versions."""
        self.expire(now)
        positions: list[int] = []
        labels: list[str | None] = []
        scores: list[float | None] = []
        versions: list[str] = []
        for i, request_id in enumerate(request_ids):
            entry = self._pending.pop(request_id, None)
            if entry is not None:
                positions.append(i)
                labels.append(entry[1])
                scores.append(entry[2])
                versions.append(entry[3])
        return positions, labels, scores, versions
