"""The ``/summary`` document: the monitor's numbers as JSON for the operator.

Pure: builds a JSON-ready dict from the monitor's state and ``now``. The shape is
documented in docs/monitoring.md ("The /summary document"); change both together.
Keys are camelCase like the Kubernetes objects the operator writes; each feature entry
carries the fields of the API's ``FeatureDrift`` (name, test, score, threshold, drifting).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mlsteward.monitoring import batches, monitors, verdicts

SCHEMA = "mlsteward.io/monitor-summary/v1"


def summary(monitor: monitors.Monitor, now: float) -> dict[str, Any]:
    windows = monitor.windows
    spec = windows.spec
    evaluation = monitor.evaluation
    report = monitor.window_report
    return {
        "schema": SCHEMA,
        "time": now,
        "reference": {
            "digest": monitor.digest,
            "rows": monitor.reference.rows,
            "task": monitor.reference.task,
            "positiveClass": monitor.reference.positive_class,
        },
        "window": {
            "kind": spec.kind,
            "size": spec.size,
            "durationSeconds": spec.duration_s,
            "minSamples": spec.min_samples,
            "panes": windows.closed.maxlen,
            "currentPaneRows": windows.current.rows,
            "windowsClosed": windows.windows_closed,
        },
        "evaluation": None if evaluation is None else _evaluation(evaluation, monitor.rules),
        "performance": None
        if report is None
        else {
            "labeled": report.performance.labeled,
            "accuracy": report.performance.accuracy,
            "rocAuc": report.performance.roc_auc,
            "rmse": report.performance.rmse,
            "mae": report.performance.mae,
            "limits": _camel_keys(monitor.options.performance_limits),
            "breached": _performance_breached(report, monitor.options.performance_limits),
        },
        "performanceByVersion": {}
        if report is None
        else {
            version: {
                "labeled": p.labeled,
                "accuracy": p.accuracy,
                "rocAuc": p.roc_auc,
                "rmse": p.rmse,
                "mae": p.mae,
            }
            for version, p in report.performance_by_version.items()
        },
        "fairness": []
        if report is None
        else [
            {
                "attribute": f.attribute,
                "groups": [
                    {"group": g, "rows": f.rows[g], "selectionRate": f.selection_rate.get(g)} for g in f.rows
                ],
                "parityDifference": f.parity_difference,
                "limit": f.limit,
                "breached": f.breached,
            }
            for f in report.fairness
        ],
        "ingest": {
            "acceptedBatches": monitor.accepted_batches,
            "acceptedRows": monitor.total.rows,
            "rejectedBatches": {r: monitor.rejected_batches[r] for r in batches.REASONS},
            "rejectedRows": {r: monitor.rejected_rows[r] for r in batches.REASONS},
            "droppedBatches": {"busy": monitor.dropped_batches["busy"]},
            "lastIngestTime": monitor.last_ingest,
        },
        "labels": {
            "joined": monitor.labels_received["joined"],
            "unknown": monitor.labels_received["unknown"],
            "pending": len(monitor.join),
            "expired": monitor.join.expired,
            "evicted": monitor.join.evicted,
        },
    }


def _evaluation(evaluation: verdicts.Evaluation, rules: verdicts.Rules) -> dict[str, Any]:
    return {
        "number": evaluation.number,
        "startTime": evaluation.started,
        "endTime": evaluation.ended,
        "rows": evaluation.rows,
        "state": evaluation.state,
        "consecutiveBreaches": evaluation.consecutive,
        "requiredConsecutive": rules.consecutive_windows,
        "drifting": evaluation.drifting,
        "driftingFeatures": evaluation.drifting_features,
        "features": [_column(v, evaluation) for v in evaluation.columns],
    }


def _column(verdict: verdicts.ColumnVerdict, evaluation: verdicts.Evaluation) -> dict[str, Any]:
    column = verdict.column
    return {
        "name": column.key,
        "role": column.role,
        "kind": column.kind,
        "test": verdict.test,
        "score": _finite(verdict.score),
        "threshold": verdict.threshold,
        "state": verdict.state,
        "drifting": verdict.drifting,
        "consecutiveBreaches": verdict.consecutive,
        "scores": {
            test: {"score": _finite(s.value), "pValue": None if s.p_value is None else _finite(s.p_value)}
            for test, s in verdict.scores.items()
        },
        "buckets": list(column.bucket_names()),
        "referenceCounts": [int(c) for c in column.reference.counts],
        "currentCounts": [int(c) for c in evaluation.current.column(column)],
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _camel_keys(values: Mapping[str, float]) -> dict[str, float]:
    names = {"min_accuracy": "minAccuracy", "min_roc_auc": "minRocAuc", "max_rmse": "maxRmse"}
    return {names.get(k, k): v for k, v in values.items()}


def _performance_breached(report: monitors.WindowReport, limits: Mapping[str, float]) -> bool:
    performance = report.performance
    low = [("min_accuracy", performance.accuracy), ("min_roc_auc", performance.roc_auc)]
    if any(name in limits and value is not None and value < limits[name] for name, value in low):
        return True
    return "max_rmse" in limits and performance.rmse is not None and performance.rmse > limits["max_rmse"]
