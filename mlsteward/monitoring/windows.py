"""Tumbling and sliding windows of mergeable panes, closed by row count and by time.

Pure: no I/O, no environment, no clock (every call takes ``now`` in seconds).

A window is made of panes. A *tumbling* window is one pane: it closes when it holds
``size`` rows or is ``duration`` old, is evaluated, and a fresh one starts. A *sliding*
window is the last ``panes`` closed panes of ``size / panes`` rows (or ``duration / panes``
seconds) each, evaluated every time a pane closes. Batches are never split: a pane closes
at the first batch that brings it to its row limit, so it may hold up to one batch more.

Memory: ``panes + 1`` summaries, whatever the traffic.

Usage::

    windows = Windows(layout, WindowSpec("tumbling", 10_000, None, 1_000), now=0.0)
    windows.current.add_rows(summary)
    for window in windows.advance(now):   # each closed window, merged, oldest first
        evaluate(window)
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Literal

from mlsteward.monitoring import fairness, labels, summaries


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """How windows are cut; ``panes`` matters for sliding windows only."""

    kind: Literal["sliding", "tumbling"]
    size: int
    duration_s: float | None
    min_samples: int
    panes: int = 10


@dataclasses.dataclass
class Pane:
    """Everything counted over a stretch of traffic; add two panes to merge them."""

    summary: summaries.Summary
    performance: labels.PerformanceCounts
    groups: fairness.GroupCounts
    started: float
    ended: float
    by_version: dict[str, labels.PerformanceCounts] = dataclasses.field(default_factory=dict)
    """The same performance counts split by the model version that answered (bounded by the caller)."""

    @classmethod
    def empty(cls, layout: summaries.Layout, now: float) -> Pane:
        return cls(
            summaries.Summary.empty(layout), labels.PerformanceCounts(), fairness.GroupCounts(), now, now
        )

    @property
    def rows(self) -> int:
        return self.summary.rows

    def add(self, other: Pane) -> None:
        self.summary.add(other.summary)
        self.performance.add(other.performance)
        self.groups.add(other.groups)
        for version, counts in other.by_version.items():
            self.by_version.setdefault(version, labels.PerformanceCounts()).add(counts)
        self.started = min(self.started, other.started)
        self.ended = max(self.ended, other.ended)


class Windows:
    """The pane in progress and the closed panes that make up the current window."""

    def __init__(self, layout: summaries.Layout, spec: WindowSpec, now: float) -> None:
        self.layout = layout
        self.spec = spec
        count = spec.panes if spec.kind == "sliding" else 1
        self.pane_rows = max(1, math.ceil(spec.size / count))
        self.pane_seconds = None if spec.duration_s is None else spec.duration_s / count
        self.closed: collections.deque[Pane] = collections.deque(maxlen=count)
        self.current = Pane.empty(layout, now)
        self.windows_closed = 0

    def due(self, now: float) -> bool:
        if self.current.rows >= self.pane_rows:
            return True
        return self.pane_seconds is not None and now - self.current.started >= self.pane_seconds

    def advance(self, now: float) -> list[Pane]:
        """Close every pane that is due; return the window each closing completes, merged."""
        completed: list[Pane] = []
        limit = (self.closed.maxlen or 1) + 1  # after a long idle spell, a few empty panes suffice
        while self.due(now) and len(completed) < limit:
            started = self.current.started
            self.current.ended = now
            self.closed.append(self.current)
            if self.pane_seconds is not None and self.current.rows < self.pane_rows:
                # Closed by time: the next pane starts where this one's time ran out.
                next_start = started + self.pane_seconds
                next_start = next_start if now - next_start < self.pane_seconds else now
            else:
                next_start = now
            self.current = Pane.empty(self.layout, next_start)
            self.windows_closed += 1
            completed.append(self.window())
        return completed

    def window(self) -> Pane:
        """The closed panes of the current window merged (empty before any closed)."""
        merged = Pane.empty(self.layout, self.closed[0].started if self.closed else self.current.started)
        for pane in self.closed:
            merged.add(pane)
        return merged
