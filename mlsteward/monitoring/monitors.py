"""The monitor's state: windows, cumulative counters, the label join and the latest verdicts.

Pure: no I/O, no environment, no clock (every call takes ``now``, in seconds since the
epoch). The HTTP app feeds it validated batches; the metrics collector, ``/summary`` and
``/report`` read it. Memory is bounded: summaries are O(columns x buckets), the join buffer
and the per-version prediction counts have fixed caps.

Usage::

    monitor = Monitor(reference, rules, window_spec, options, now=clock())
    monitor.ingest(batches.parse(document, monitor.layout, ...), now=clock())
    monitor.advance(now=clock())   # closes due windows and evaluates them
    monitor.evaluation             # the latest closed window's verdicts (or None)
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping

from mlsteward.monitoring import batches, fairness, labels, profiles, summaries, verdicts, windows

MAX_PREDICTION_SERIES = 256
MAX_PERFORMANCE_VERSIONS = 8  # per pane: a rollout has two; more fall into OTHER
OTHER = "<other>"


@dataclasses.dataclass(frozen=True)
class Options:
    """Limits that are not part of the Monitor spec (settings.py documents each)."""

    label_buffer_size: int = 100_000
    label_timeout_s: float = 86_400.0
    fairness_limits: Mapping[str, float] = dataclasses.field(default_factory=dict)
    min_group_rows: int = 30
    performance_limits: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class WindowReport:
    """Performance and fairness of the evaluated window."""

    performance: labels.Performance
    fairness: tuple[fairness.AttributeFairness, ...]
    performance_by_version: Mapping[str, labels.Performance] = dataclasses.field(default_factory=dict)


class Monitor:
    """Everything the sidecar knows, updated by ``ingest``, ``ingest_labels`` and ``advance``."""

    def __init__(
        self,
        reference: profiles.Reference,
        rules: verdicts.Rules,
        window_spec: windows.WindowSpec,
        options: Options,
        *,
        now: float,
        digest: str = "",
    ) -> None:
        self.reference = reference
        self.digest = digest
        self.layout = summaries.Layout(reference)
        for column in self.layout.columns:
            rules.for_column(column)  # fail at start, not at the first window, on a bad override
        self.rules = rules
        self._scorer = verdicts.Scorer(self.layout)
        self.options = options
        self.windows = windows.Windows(self.layout, window_spec, now)
        self.join = labels.JoinBuffer(options.label_buffer_size, options.label_timeout_s)
        self.total = summaries.Summary.empty(self.layout)  # since start: the Prometheus counters
        self._staging = summaries.Staging(self.layout)
        self.started = now
        self.last_ingest: float | None = None
        self.evaluation: verdicts.Evaluation | None = None
        self.window_report: WindowReport | None = None
        self.accepted_batches = 0
        self.rejected_batches: collections.Counter[str] = collections.Counter()
        self.rejected_rows: collections.Counter[str] = collections.Counter()
        self.dropped_batches: collections.Counter[str] = collections.Counter()
        self.predictions: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.labels_received: collections.Counter[str] = collections.Counter()
        self._groups: dict[str, set[str]] = {a: set() for a in options.fairness_limits}

    @property
    def fairness_attributes(self) -> tuple[str, ...]:
        return tuple(self.options.fairness_limits)

    def ingest(self, batch: batches.Batch, now: float) -> None:
        """Add a validated batch to the pane in progress (closing due windows first)."""
        if self.windows.due(now):
            self.advance(now)
        staging = self._staging
        if not staging.fits(batch.rows):
            self.flush()
        if staging.fits(batch.rows):
            if staging.add(batch.numeric, batch.categorical):
                self.flush()
        else:  # larger than the staging buffer: bin it directly
            delta = summaries.Summary.empty(self.layout)
            self.layout.bin_columns(batch.numeric, delta)
            for key, values in batch.categorical.items():
                counts = values if isinstance(values, Mapping) else collections.Counter(values)
                self.layout.bin_categorical(self.layout.by_key[key], counts, delta)
            self._add_counts(delta)
        pane = self.windows.current
        pane.summary.rows += batch.rows
        pane.ended = now
        self.total.rows += batch.rows
        self._count_predictions(batch)
        positive = self.reference.positive_class
        if batch.labels is not None and positive is not None:
            for attribute, groups in batch.metadata.items():
                if attribute in self._groups:
                    fairness.count(
                        pane.groups,
                        attribute=attribute,
                        groups=groups,
                        predicted=batch.labels,
                        positive=positive,
                        known_groups=self._groups[attribute],
                    )
        if batch.request_ids is not None:
            self.join.remember(
                batch.request_ids,
                batch.labels,
                batch.scores,
                now,
                version=batch.model_version,
                request_rows=batch.request_rows,
            )
        self.accepted_batches += 1
        self.last_ingest = now
        if self.windows.due(now):
            self.advance(now)

    def flush(self) -> None:
        """Bin the staged rows into the pane in progress and the totals (before any read)."""
        self._add_counts(self._staging.flush())

    def _add_counts(self, delta: summaries.Summary) -> None:
        for target in (self.windows.current.summary, self.total):
            target.counts += delta.counts
            target.sums += delta.sums

    def _count_predictions(self, batch: batches.Batch) -> None:
        labels = batch.categorical.get("prediction.label", {"": batch.rows})
        label_counts = labels if isinstance(labels, Mapping) else collections.Counter(labels)
        for label, n in label_counts.items():
            key = (batch.model_version, batch.route, "" if label is None else label)
            if key not in self.predictions and len(self.predictions) >= MAX_PREDICTION_SERIES:
                key = (OTHER, batch.route, OTHER)
            self.predictions[key] += n

    def reject(self, reason: str, rows: int) -> None:
        self.rejected_batches[reason] += 1
        self.rejected_rows[reason] += rows

    def drop(self, reason: str) -> None:
        self.dropped_batches[reason] += 1

    def ingest_labels(self, batch: batches.LabelBatch, now: float) -> int:
        """Join labels to remembered predictions; return how many joined."""
        self.advance(now)
        positions, predicted, scores, versions = self.join.join(batch.request_ids, now)
        truth = [batch.labels[i] for i in positions]
        pane = self.windows.current
        self._add_performance(pane.performance, predicted, scores, truth)
        rows_by_version: dict[str, list[int]] = collections.defaultdict(list)
        for row, version in enumerate(versions):
            rows_by_version[version].append(row)
        for version, rows in rows_by_version.items():
            full = version not in pane.by_version and len(pane.by_version) >= MAX_PERFORMANCE_VERSIONS
            self._add_performance(
                pane.by_version.setdefault(OTHER if full else version, labels.PerformanceCounts()),
                [predicted[r] for r in rows],
                [scores[r] for r in rows],
                [truth[r] for r in rows],
            )
        self.labels_received["joined"] += len(positions)
        self.labels_received["unknown"] += len(batch.request_ids) - len(positions)
        return len(positions)

    def _add_performance(
        self,
        counts: labels.PerformanceCounts,
        predicted: list[str | None],
        scores: list[float | None],
        truth: list[str | float],
    ) -> None:
        if self.reference.task == "regression":
            counts.add_regression(scores, [float(t) for t in truth])
        else:
            counts.add_classification(
                predicted, [str(t) for t in truth], scores, self.reference.positive_class
            )

    def advance(self, now: float) -> None:
        """Bin staged rows, close the windows that are due and evaluate them.

        Readers call this first, so every read sees every accepted row.
        """
        self.flush()
        for window in self.windows.advance(now):
            self.evaluation = verdicts.evaluate(
                self.layout,
                window.summary,
                self.rules,
                self.evaluation,
                number=self.windows.windows_closed,
                started=window.started,
                ended=window.ended,
                scorer=self._scorer,
            )
            self.window_report = WindowReport(
                labels.report(window.performance, self.reference.task),
                tuple(
                    fairness.report(window.groups, attribute, self.options.min_group_rows, limit)
                    for attribute, limit in self.options.fairness_limits.items()
                ),
                {
                    version: labels.report(counts, self.reference.task)
                    for version, counts in sorted(window.by_version.items())
                },
            )
        self.join.expire(now)
