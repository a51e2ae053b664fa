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

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

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


class JoinBuffer:
    """Predictions waiting for their labels: bounded in size and in age.

    A ring of ``capacity`` rows (request id, label, score, version, time in parallel lists) plus
    a dict from request id to row number: remembering a batch is a few C-level slice assignments
    and one ``dict.update``, with no object made per row, so a sidecar at tens of thousands of rows
    a second spends little on it. Row ``k`` lives in slot ``k % capacity``; a new row overwrites
    the oldest (counted as evicted if its label never came), and rows older than ``timeout_s``
    are dropped (counted as expired). A request id remembered twice (a shadow challenger scores
    the same request) joins its newest row.
    """

    def __init__(self, capacity: int, timeout_s: float) -> None:
        self.capacity = capacity
        self.timeout_s = timeout_s
        self.expired = 0
        self.evicted = 0
        self._index: dict[str, int] = {}  # request id -> row number, for rows awaiting a label
        self._ids: list[str | None] = [None] * capacity
        self._labels: list[str | None] = [None] * capacity
        self._scores: list[float | None] = [None] * capacity
        self._versions: list[str] = [""] * capacity
        self._times: list[float] = [0.0] * capacity
        self._next = 0  # row number of the next row remembered
        self._oldest = 0  # row number of the oldest row neither expired nor evicted

    def __len__(self) -> int:
        return len(self._index)

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
        if n > self.capacity:  # the batch alone overflows: its first rows never fit
            self.evicted += n - self.capacity
            skip = n - self.capacity
            request_ids = request_ids[skip:]
            labels = labels[skip:] if labels is not None else None
            scores = scores[skip:] if scores is not None else None
            n = self.capacity
        self.evicted += self._release(self._next + n - self.capacity)
        start = self._next
        self._index.update(zip(request_ids, range(start, start + n), strict=True))
        self._put(self._ids, start, request_ids)
        self._put(self._labels, start, labels if labels is not None else [None] * n)
        self._put(self._scores, start, scores if scores is not None else [None] * n)
        self._put(self._versions, start, [version] * n)
        self._put(self._times, start, [now] * n)
        self._next += n
        self.expire(now)

    def expire(self, now: float) -> None:
        deadline = now - self.timeout_s
        number, capacity, times = self._oldest, self.capacity, self._times
        while number < self._next and times[number % capacity] < deadline:
            number += 1
        self.expired += self._release(number)

    def _release(self, up_to: int) -> int:
        """Forget rows older than row number ``up_to``; how many still awaited a label."""
        forgotten = 0
        index, ids, capacity = self._index, self._ids, self.capacity
        for number in range(self._oldest, min(up_to, self._next)):
            request_id = ids[number % capacity]
            if request_id is not None and index.get(request_id) == number:
                del index[request_id]
                forgotten += 1
        self._oldest = max(self._oldest, up_to)
        return forgotten

    def _put(self, ring: list[Any], start: int, values: Sequence[Any]) -> None:
        slot = start % self.capacity
        end = slot + len(values)
        if end <= self.capacity:
            ring[slot:end] = values
        else:
            split = self.capacity - slot
            ring[slot:] = values[:split]
            ring[: end - self.capacity] = values[split:]

    def join(
        self, request_ids: Sequence[str], now: float
    ) -> tuple[list[int], list[str | None], list[float | None], list[str]]:
        """Take the rows whose request ids are known: their positions, labels, scores and versions."""
        self.expire(now)
        positions: list[int] = []
        labels: list[str | None] = []
        scores: list[float | None] = []
        versions: list[str] = []
        index, capacity = self._index, self.capacity
        for i, request_id in enumerate(request_ids):
            number = index.pop(request_id, None)
            if number is not None:
                slot = number % capacity
                positions.append(i)
                labels.append(self._labels[slot])
                scores.append(self._scores[slot])
                versions.append(self._versions[slot])
        return positions, labels, scores, versions
