"""Delayed ground truth: a bounded join buffer and mergeable performance counts.

Pure: no I/O, no clock (callers pass ``now`` in seconds), no environment.

The server's batches carry request ids (one per row, or one per request with its row count);
the buffer remembers each row's prediction until its label arrives (``POST /v1/labels``, by
row id), it expires (``label_timeout``) or the buffer is full (the oldest requests go first).
A joined label is added to the performance counts of the pane in progress, so accuracy, ROC
AUC and RMSE cover the labels that arrived in the window.

ROC AUC comes from score histograms (``AUC_BINS`` equal bins on [0, 1]): ties inside a bin
count a half, so the error is at most the share of positive/negative pairs in the same bin
(under 0.002 for smooth scores).

Each remembered row keeps the model version that answered it, so the monitor also counts
performance per version (the canary analysis compares the canary's with the stable one's).

Usage::

    buffer = JoinBuffer(capacity=100_000, timeout_s=86400.0)
    buffer.remember(ids, labels, scores, now, version="3", request_rows=rows_per_request)
    positions, predicted, scores, versions = buffer.join(request_ids, now)
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
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
    """Predictions waiting for their labels: bounded in size (in rows) and in age.

    One *entry* per request: its id, its first row, its row count, version and time, in parallel
    lists that form a ring of ``capacity`` entries, plus a dict from request id to entry number.
    The rows' labels and scores sit in two more rings of ``capacity`` rows. A request of ``N > 1``
    rows (contracts §4: one id plus ``request_rows``) is one entry, and its rows are joined by the
    row ids ``<id>:<i>`` the contract gives them; a one-row request's row is joined by its id.
    Remembering a batch is one ``dict.update`` over its requests and a few C-level slice
    assignments, with no object made per row, so a sidecar at tens of thousands of rows a second
    spends little on it.

    The bound is in rows: remembering ``n`` rows first forgets the oldest entries until the
    rows kept and the new ones fit in ``capacity`` (rows whose label never came are counted as
    evicted); entries older than ``timeout_s`` are dropped (their waiting rows counted as
    expired). A request id remembered twice (a shadow challenger scores the same request) joins
    its newest entry; each row joins once.
    """

    def __init__(self, capacity: int, timeout_s: float) -> None:
        self.capacity = capacity
        self.timeout_s = timeout_s
        self.expired = 0
        self.evicted = 0
        self._index: dict[str, int] = {}  # request id -> entry number, for entries awaiting a label
        # Entry rings (entry ``e`` in slot ``e % capacity``; never more entries than rows).
        self._ids: list[str | None] = [None] * capacity
        self._first: list[int] = [0] * capacity  # row number of the entry's first row
        self._rows: list[int] = [0] * capacity
        self._waiting: list[int] = [0] * capacity  # rows of the entry still awaiting a label
        self._joined: list[int] = [0] * capacity  # bit i: row i of a multi-row entry has joined
        self._versions: list[str] = [""] * capacity
        self._times: list[float] = [0.0] * capacity
        # Row rings (row ``k`` in slot ``k % capacity``).
        self._labels: list[str | None] = [None] * capacity
        self._scores: list[float | None] = [None] * capacity
        self._next = 0  # entry number of the next entry remembered
        self._oldest = 0  # entry number of the oldest entry neither expired nor evicted
        self._next_row = 0  # row number of the next row remembered
        self._pending = 0  # rows awaiting a label in the entries the index points to

    def __len__(self) -> int:
        """Rows awaiting a label."""
        return self._pending

    def remember(
        self,
        request_ids: Sequence[str],
        labels: Sequence[str | None] | None,
        scores: Sequence[float | None] | None,
        now: float,
        *,
        version: str = "",
        request_rows: Sequence[int] | None = None,
    ) -> None:
        """Remember a batch: ``request_ids`` one per request, ``request_rows`` the row count of
        each (``None``: one row each), ``labels`` and ``scores`` one per row."""
        if self.capacity == 0:
            return
        counts = [1] * len(request_ids) if request_rows is None else list(request_rows)
        n = len(counts) if request_rows is None else sum(counts)
        skip_rows = 0
        if n > self.capacity:  # the batch alone overflows: its first requests never fit
            skip = 0
            while n - skip_rows > self.capacity:
                skip_rows += counts[skip]
                skip += 1
            self.evicted += skip_rows
            request_ids, counts = request_ids[skip:], counts[skip:]
            labels = labels[skip_rows:] if labels is not None else None
            scores = scores[skip_rows:] if scores is not None else None
            n -= skip_rows
        self._next_row += skip_rows
        self.evicted += self._release_rows(self._next_row + n - self.capacity)
        m = len(request_ids)
        start, first_row = self._next, self._next_row
        index = self._index
        if not index.keys().isdisjoint(request_ids):  # ids awaiting already (a shadow challenger)
            for request_id in request_ids:
                previous = index.pop(request_id, None)
                if previous is not None:
                    self._pending -= self._waiting[previous % self.capacity]
        before = len(index)
        index.update(zip(request_ids, range(start, start + m), strict=True))
        self._pending += n
        if request_rows is None:
            firsts: Sequence[int] = range(first_row, first_row + m)
        else:
            firsts = list(itertools.accumulate(counts, initial=first_row))[:-1]
        if len(index) - before != m:  # an id repeated within the batch: only its last entry counts
            for offset, request_id in enumerate(request_ids):
                if index[request_id] != start + offset:
                    self._pending -= counts[offset]
        self._put(self._ids, start, request_ids)
        self._put(self._first, start, firsts)
        self._put(self._rows, start, counts)
        self._put(self._waiting, start, counts)
        self._put(self._joined, start, [0] * m)
        self._put(self._versions, start, [version] * m)
        self._put(self._times, start, [now] * m)
        self._put(self._labels, first_row, labels if labels is not None else [None] * n)
        self._put(self._scores, first_row, scores if scores is not None else [None] * n)
        self._next += m
        self._next_row += n
        self.expire(now)

    def expire(self, now: float) -> None:
        deadline = now - self.timeout_s
        number, capacity, times = self._oldest, self.capacity, self._times
        while number < self._next and times[number % capacity] < deadline:
            number += 1
        self.expired += self._release(number)

    def _release_rows(self, up_to_row: int) -> int:
        """Forget the oldest entries until none starts before row number ``up_to_row``."""
        capacity, first = self.capacity, self._first
        entries = range(self._oldest, self._next)
        return self._release(
            entries[0] + bisect.bisect_left(entries, up_to_row, key=lambda e: first[e % capacity])
            if entries
            else self._oldest
        )

    def _release(self, up_to: int) -> int:
        """Forget entries older than entry number ``up_to``; how many of their rows still awaited
        a label."""
        forgotten = 0
        index, ids, waiting, capacity = self._index, self._ids, self._waiting, self.capacity
        for number in range(self._oldest, min(up_to, self._next)):
            slot = number % capacity
            request_id = ids[slot]
            if request_id is not None and index.get(request_id) == number:
                del index[request_id]
                forgotten += waiting[slot]
        self._oldest = max(self._oldest, up_to)
        self._pending -= forgotten
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
        """Take the rows whose ids are known: their positions, labels, scores and versions.

        ``request_ids`` are row ids: a one-row request's id, or ``<id>:<i>`` for row ``i`` of a
        multi-row request. Where both readings find an entry, the newer entry is meant.
        """
        self.expire(now)
        positions: list[int] = []
        labels: list[str | None] = []
        scores: list[float | None] = []
        versions: list[str] = []
        index, capacity, counts = self._index, self.capacity, self._rows
        for position, row_id in enumerate(request_ids):
            number = index.get(row_id)  # a one-row request's id
            if number is not None and counts[number % capacity] != 1:
                number = None  # the id of a multi-row request: its rows carry ``:<i>``
            key, row = row_id, 0
            base, colon, tail = row_id.rpartition(":")
            if (
                colon
                and tail.isascii()
                and tail.isdigit()
                and len(tail) < 19
                and (tail == "0" or tail[0] != "0")
            ):
                whole = index.get(base)  # row ``tail`` of a multi-row request
                if whole is not None and (number is None or whole > number):
                    size = counts[whole % capacity]
                    if size > 1 and int(tail) < size:
                        number, key, row = whole, base, int(tail)
            if number is None:
                continue
            slot = number % capacity
            if counts[slot] > 1:
                bit = 1 << row
                if self._joined[slot] & bit:
                    continue  # this row has joined already
                self._joined[slot] |= bit
            self._waiting[slot] -= 1
            self._pending -= 1
            if self._waiting[slot] == 0:
                del index[key]
            row_slot = (self._first[slot] + row) % capacity
            positions.append(position)
            labels.append(self._labels[row_slot])
            scores.append(self._scores[row_slot])
            versions.append(self._versions[slot])
        return positions, labels, scores, versions
