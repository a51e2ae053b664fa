"""Prometheus exposition of the monitor's state, built at scrape time by a custom collector.

No metric call happens per row: the counts already kept in ``monitors.Monitor`` are turned
into metric families when Prometheus scrapes. The program creates its own registry and
passes it in; nothing registers on the global one.

Labels stay low-cardinality: column and bucket names come from the reference profile
(bounded by its size), model versions are capped, and request ids never appear. The bucket
counters (``mlsteward_monitor_bucket_rows_total``) count since the process started, so
``sum by (column, bucket) (increase(...[1h]))`` gives the Deployment's histogram over any
range, across replicas. docs/monitoring.md lists every family.

Usage::

    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(monitor))
    body = prometheus_client.generate_latest(registry)
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from mlsteward.monitoring import batches, monitors, verdicts

PREFIX = "mlsteward_monitor_"
COLUMN_LABELS = ["role", "column"]


class MonitorCollector(Collector):
    """Yields the monitor's metric families on every scrape."""

    def __init__(self, monitor: monitors.Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self.monitor
        yield from self._ingest(monitor)
        yield from self._buckets(monitor)
        yield from self._drift(monitor)
        yield from self._quality(monitor)

    def _ingest(self, monitor: monitors.Monitor) -> Iterator[Metric]:
        info = InfoMetricFamily(
            PREFIX + "reference", "The reference profile in use.", labels=["digest", "task"]
        )
        info.add_metric([monitor.digest, monitor.reference.task], {"rows": str(monitor.reference.rows)})
        yield info
        rows = CounterMetricFamily(PREFIX + "rows", "Rows accepted into the windows.")
        rows.add_metric([], monitor.total.rows)
        yield rows
        accepted = CounterMetricFamily(PREFIX + "batches", "Batches accepted.")
        accepted.add_metric([], monitor.accepted_batches)
        yield accepted
        rejected = CounterMetricFamily(
            PREFIX + "rejected_batches", "Batches rejected as bad input, by reason.", labels=["reason"]
        )
        rejected_rows = CounterMetricFamily(
            PREFIX + "rejected_rows", "Rows in rejected batches, by reason.", labels=["reason"]
        )
        for reason in batches.REASONS:
            rejected.add_metric([reason], monitor.rejected_batches[reason])
            rejected_rows.add_metric([reason], monitor.rejected_rows[reason])
        yield rejected
        yield rejected_rows
        dropped = CounterMetricFamily(
            PREFIX + "dropped_batches",
            "Batches dropped unread because the monitor was busy (the server counts its own drops).",
            labels=["reason"],
        )
        dropped.add_metric(["busy"], monitor.dropped_batches["busy"])
        yield dropped
        predictions = CounterMetricFamily(
            PREFIX + "predictions",
            "Predictions seen, by model version, route and predicted label.",
            labels=["model_version", "route", "label"],
        )
        for (version, route, label), n in sorted(monitor.predictions.items()):
            predictions.add_metric([version, route, label], n)
        yield predictions
        if monitor.last_ingest is not None:
            last = GaugeMetricFamily(
                PREFIX + "last_ingest_timestamp_seconds", "When the last batch was accepted."
            )
            last.add_metric([], monitor.last_ingest)
            yield last

    def _buckets(self, monitor: monitors.Monitor) -> Iterator[Metric]:
        counts = CounterMetricFamily(
            PREFIX + "bucket_rows",
            "Rows per column bucket since start (sum across replicas, increase() over any range).",
            labels=[*COLUMN_LABELS, "bucket"],
        )
        reference = GaugeMetricFamily(
            PREFIX + "reference_bucket_ratio",
            "Share of the reference rows in each column bucket.",
            labels=[*COLUMN_LABELS, "bucket"],
        )
        total = monitor.total.counts
        for column in monitor.layout.columns:
            ref_total = float(column.reference.counts.sum())
            for i, bucket in enumerate(column.bucket_names()):
                labels = [column.role, column.name, bucket]
                counts.add_metric(labels, int(total[column.offset + i]))
                reference.add_metric(labels, float(column.reference.counts[i]) / ref_total)
        yield counts
        yield reference

    def _drift(self, monitor: monitors.Monitor) -> Iterator[Metric]:
        windows = monitor.windows
        current = GaugeMetricFamily(PREFIX + "window_current_rows", "Rows in the window pane in progress.")
        current.add_metric([], windows.current.rows)
        yield current
        closed = CounterMetricFamily(PREFIX + "windows", "Windows (panes) closed and evaluated.")
        closed.add_metric([], windows.windows_closed)
        yield closed
        minimum = GaugeMetricFamily(PREFIX + "window_min_rows", "Rows a window needs before any verdict.")
        minimum.add_metric([], monitor.rules.min_samples)
        yield minimum
        evaluation = monitor.evaluation
        if evaluation is None:
            return
        rows = GaugeMetricFamily(PREFIX + "window_rows", "Rows in the last evaluated window.")
        rows.add_metric([], evaluation.rows)
        yield rows
        evaluated = GaugeMetricFamily(
            PREFIX + "last_evaluation_timestamp_seconds", "When the last evaluated window closed."
        )
        evaluated.add_metric([], evaluation.ended)
        yield evaluated
        score = GaugeMetricFamily(
            PREFIX + "drift_score",
            "Drift score of each column by test (effect size).",
            labels=[*COLUMN_LABELS, "test"],
        )
        threshold = GaugeMetricFamily(
            PREFIX + "drift_threshold",
            "Threshold of the test that decides each column's verdict.",
            labels=[*COLUMN_LABELS, "test"],
        )
        state = GaugeMetricFamily(
            PREFIX + "column_drift_state",
            "1 for the column's state in the last window: insufficient_data, ok or drift.",
            labels=[*COLUMN_LABELS, "state"],
        )
        streak = GaugeMetricFamily(
            PREFIX + "column_drift_consecutive_windows",
            "Windows in a row the column drifted.",
            labels=COLUMN_LABELS,
        )
        drifting = GaugeMetricFamily(
            PREFIX + "column_drifting",
            "1 when the column drifted in enough consecutive windows.",
            labels=COLUMN_LABELS,
        )
        for verdict in sorted(evaluation.columns, key=lambda v: v.column.offset):
            labels = [verdict.column.role, verdict.column.name]
            for test, result in verdict.scores.items():
                score.add_metric([*labels, test], result.value)
            threshold.add_metric([*labels, verdict.test], verdict.threshold)
            for state_name in verdicts.STATES:
                state.add_metric([*labels, state_name], float(verdict.state == state_name))
            streak.add_metric(labels, verdict.consecutive)
            drifting.add_metric(labels, float(verdict.drifting))
        yield from (score, threshold, state, streak, drifting)
        model_state = GaugeMetricFamily(
            PREFIX + "drift_state", "1 for the model's state in the last window.", labels=["state"]
        )
        for state_name in verdicts.STATES:
            model_state.add_metric([state_name], float(evaluation.state == state_name))
        yield model_state
        for name, value, text in (
            (
                "drifting",
                float(evaluation.drifting),
                "1 when the model drifted in enough consecutive windows.",
            ),
            ("drift_consecutive_windows", evaluation.consecutive, "Windows in a row the model drifted."),
            ("drifting_features", evaluation.drifting_features, "Features that drift in the last window."),
        ):
            gauge = GaugeMetricFamily(PREFIX + name, text)
            gauge.add_metric([], value)
            yield gauge

    def _quality(self, monitor: monitors.Monitor) -> Iterator[Metric]:
        joined = CounterMetricFamily(
            PREFIX + "labels", "Labels received, by join outcome.", labels=["outcome"]
        )
        for outcome in ("joined", "unknown"):
            joined.add_metric([outcome], monitor.labels_received[outcome])
        yield joined
        forgotten = CounterMetricFamily(
            PREFIX + "label_join_dropped_rows",
            "Predictions forgotten before their label came, by reason (expired, evicted).",
            labels=["reason"],
        )
        forgotten.add_metric(["expired"], monitor.join.expired)
        forgotten.add_metric(["evicted"], monitor.join.evicted)
        yield forgotten
        pending = GaugeMetricFamily(PREFIX + "label_join_pending_rows", "Predictions waiting for a label.")
        pending.add_metric([], len(monitor.join))
        yield pending
        report = monitor.window_report
        if report is None:
            return
        performance = report.performance
        labeled = GaugeMetricFamily(PREFIX + "labeled_rows", "Labels joined in the last evaluated window.")
        labeled.add_metric([], performance.labeled)
        yield labeled
        for name, value in (
            ("accuracy", performance.accuracy),
            ("roc_auc", performance.roc_auc),
            ("rmse", performance.rmse),
            ("mae", performance.mae),
        ):
            if value is not None:
                gauge = GaugeMetricFamily(PREFIX + name, f"{name} over the last evaluated window's labels.")
                gauge.add_metric([], value)
                yield gauge
        # Per model version (at most monitors.MAX_PERFORMANCE_VERSIONS series each): separate
        # families, so the version-less series that dashboards and alerts read stay as they are.
        by_version = report.performance_by_version
        labeled_by_version = GaugeMetricFamily(
            PREFIX + "labeled_rows_by_version",
            "Labels joined in the last evaluated window, by the model version that answered.",
            labels=["version"],
        )
        for version, figures in by_version.items():
            labeled_by_version.add_metric([version], figures.labeled)
        yield labeled_by_version
        for name in ("accuracy", "roc_auc", "rmse", "mae"):
            gauge = GaugeMetricFamily(
                PREFIX + name + "_by_version",
                f"{name} over the last evaluated window's labels, by the model version that answered.",
                labels=["version"],
            )
            for version, figures in by_version.items():
                value = getattr(figures, name)
                if value is not None:
                    gauge.add_metric([version], value)
            yield gauge
        rates = GaugeMetricFamily(
            PREFIX + "selection_rate",
            "Share of rows predicted positive, per group of a sensitive attribute.",
            labels=["attribute", "group"],
        )
        group_rows = GaugeMetricFamily(
            PREFIX + "group_rows",
            "Rows per group of a sensitive attribute in the window.",
            labels=["attribute", "group"],
        )
        parity = GaugeMetricFamily(
            PREFIX + "demographic_parity_difference",
            "Largest minus smallest selection rate among groups with enough rows.",
            labels=["attribute"],
        )
        for attribute in report.fairness:
            for group, rate in attribute.selection_rate.items():
                rates.add_metric([attribute.attribute, group], rate)
            for group, n in attribute.rows.items():
                group_rows.add_metric([attribute.attribute, group], n)
            if attribute.parity_difference is not None:
                parity.add_metric([attribute.attribute], attribute.parity_difference)
        yield from (rates, group_rows, parity)
