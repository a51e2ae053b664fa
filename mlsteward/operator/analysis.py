"""Canary analysis: the serving pods' Prometheus counters, and a verdict over a step.

The operator scrapes each serving pod's ``/metrics`` (docs/serving.md) by pod IP at the start
and at the end of every step, sums the pods, and judges the difference. Pure: parsing and
judging only, no I/O and no clock.

Inputs (names from mlsteward/serving/metrics.py):
``mlsteward_serving_requests_total{model,version,code}`` for error rates,
``mlsteward_serving_shadow_rows_total{outcome}`` for shadow agreement, and
``mlsteward_serving_request_duration_seconds_bucket{model,version,le}`` for p99 latency per
version (skipped, and said so, when a step observed no latency for one of the two versions).

Labelled performance, when the Deployment has a Monitor: each serving pod's monitor
``/summary`` (docs/monitoring.md) carries ``performanceByVersion`` over its last window; the
pods' figures are merged weighted by labelled rows (accuracy and MAE exactly, RMSE through
the mean squared error, ROC AUC as a weighted mean: an approximation across pods).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from mlsteward.api import deployment as api_deployment

REQUESTS = "mlsteward_serving_requests_total"
SHADOW_ROWS = "mlsteward_serving_shadow_rows_total"
LATENCY_BUCKETS = "mlsteward_serving_request_duration_seconds_bucket"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_WANTED = {REQUESTS, SHADOW_ROWS, LATENCY_BUCKETS}
Counters = dict[str, Any]
_TOTALS = (
    "stableRequests",
    "stableErrors",
    "canaryRequests",
    "canaryErrors",
    "shadowAgree",
    "shadowDisagree",
)


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples of the metrics the analysis reads, from Prometheus text format."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line.strip())
        if match is None or match.group(1) not in _WANTED:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        labels = {
            k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(match.group(2) or "")
        }
        samples.append((match.group(1), labels, value))
    return samples


def counters(pages: Iterable[str], *, stable: int, canary: int) -> Counters:
    """The pods' pages summed into the wire shape of ``RolloutCounters``."""
    result: Counters = {
        "stableRequests": 0.0,
        "stableErrors": 0.0,
        "canaryRequests": 0.0,
        "canaryErrors": 0.0,
        "shadowAgree": 0.0,
        "shadowDisagree": 0.0,
        "stableLatency": {},
        "canaryLatency": {},
        "pods": 0,
    }
    who = {str(stable): "stable", str(canary): "canary"}
    for page in pages:
        result["pods"] += 1
        for name, labels, value in parse_samples(page):
            if name == REQUESTS and labels.get("version") in who:
                role = who[labels["version"]]
                result[f"{role}Requests"] += value
                if labels.get("code", "").startswith("5"):
                    result[f"{role}Errors"] += value
            elif name == SHADOW_ROWS and labels.get("outcome") in {"agree", "disagree"}:
                result["shadowAgree" if labels["outcome"] == "agree" else "shadowDisagree"] += value
            elif name == LATENCY_BUCKETS and labels.get("version") in who and "le" in labels:
                histogram = result[f"{who[labels['version']]}Latency"]
                histogram[labels["le"]] = histogram.get(labels["le"], 0.0) + value
    return result


def went_back(before: Counters, after: Counters) -> bool:
    """True when any counter is lower than at the step's start: a serving pod restarted or left."""
    return any(float(after.get(key, 0.0)) < float(before.get(key, 0.0)) for key in _TOTALS)


def p99(before: dict[str, float], after: dict[str, float]) -> float | None:
    """The 99th percentile (a bucket's upper bound) of the observations between two snapshots."""
    buckets = sorted(((float(le), after[le] - before.get(le, 0.0)) for le in after), key=lambda b: b[0])
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= 0.99 * total:
            return bound if math.isfinite(bound) else None
    return None


# (metric in /summary, field suffix in AnalysisResult, True when higher is better)
_PERFORMANCE = (
    ("accuracy", "Accuracy", True),
    ("rocAuc", "RocAuc", True),
    ("rmse", "Rmse", False),
    ("mae", "Mae", False),
)


def performance(summaries: Iterable[dict[str, Any]], version: int) -> dict[str, float | None]:
    """One version's labelled performance over the pods' monitor summaries, merged."""
    labeled = 0.0
    sums = {name: 0.0 for name, _, _ in _PERFORMANCE}
    weights = {name: 0.0 for name, _, _ in _PERFORMANCE}
    for document in summaries:
        figures = (document.get("performanceByVersion") or {}).get(str(version))
        if not isinstance(figures, dict):
            continue
        rows = figures.get("labeled")
        if not isinstance(rows, int | float) or rows <= 0:
            continue
        labeled += rows
        for name, _, _ in _PERFORMANCE:
            value = figures.get(name)
            if isinstance(value, int | float) and math.isfinite(value):
                sums[name] += rows * (value * value if name == "rmse" else value)
                weights[name] += rows
    result: dict[str, float | None] = {"labeled": labeled}
    for name, _, _ in _PERFORMANCE:
        mean = sums[name] / weights[name] if weights[name] > 0 else None
        result[name] = math.sqrt(mean) if name == "rmse" and mean is not None else mean
    return result


def compare_performance(
    summaries: Sequence[dict[str, Any]],
    limits: api_deployment.CanaryAnalysis,
    *,
    stable: int,
    canary: int,
) -> tuple[dict[str, float], str, list[str]]:
    """The figures (AnalysisResult fields), the message part and the failures of the
    labelled-performance check; skipped (no failure) below ``minLabels`` for either version."""
    ours, theirs = performance(summaries, canary), performance(summaries, stable)
    n_canary, n_stable = ours["labeled"] or 0.0, theirs["labeled"] or 0.0
    figures: dict[str, float] = {"canaryLabels": n_canary, "stableLabels": n_stable}
    if n_canary < limits.min_labels or n_stable < limits.min_labels:
        return (
            figures,
            f"performance not compared ({n_canary:.0f} canary and {n_stable:.0f} stable labelled rows; "
            f"minLabels={limits.min_labels})",
            [],
        )
    parts, failures = [], []
    for name, field, higher_is_better in _PERFORMANCE:
        mine, baseline = ours[name], theirs[name]
        if mine is None or baseline is None:
            continue
        figures[f"canary{field}"], figures[f"stable{field}"] = mine, baseline
        parts.append(f"{name} canary {mine:.4f} vs stable {baseline:.4f}")
        worse = baseline - mine if higher_is_better else mine - baseline
        if worse > limits.max_performance_decrease:
            failures.append(
                f"performance: {name} {'falls' if higher_is_better else 'rises'} by {worse:.4f}, "
                f"more than maxPerformanceDecrease={limits.max_performance_decrease}"
            )
    text = ", ".join(parts) if parts else "no comparable performance metric"
    return figures, f"{text} over {n_canary:.0f} canary and {n_stable:.0f} stable labelled rows", failures


def judge(
    before: Counters,
    after: Counters,
    limits: api_deployment.CanaryAnalysis,
    *,
    mode: str,
    step: int,
    now: str,
    stable: int = 0,
    canary: int = 0,
    summaries: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The verdict of one step (wire shape of ``AnalysisResult``).

    Failed when the canary's error rate exceeds the stable version's by more than
    ``maxErrorRateIncrease``, its p99 latency the stable one's by more than
    ``maxLatencyP99IncreasePercent`` (when both were observed in the step), or, in a shadow step, its
    disagreement ``maxDisagreement``, or its labelled performance (``summaries``: the monitor
    sidecars' /summary documents, None without a Monitor) the stable one's by more than
    ``maxPerformanceDecrease``. Inconclusive when it answered fewer than ``minRequests``
    (a pod restarted and counters went back: also inconclusive); too few labels never make a
    step Inconclusive, they skip the performance check. Otherwise Passed.
    """
    delta = {key: float(after.get(key, 0.0)) - float(before.get(key, 0.0)) for key in _TOTALS}
    result: dict[str, Any] = {"at": now, "step": step}
    if any(value < 0 for value in delta.values()):
        return {
            **result,
            "verdict": "Inconclusive",
            "message": "counters went back (a serving pod restarted): the step's interval starts over",
        }
    if mode == "shadow":
        rows = delta["shadowAgree"] + delta["shadowDisagree"]
        result["canaryRequests"] = rows
        if rows < max(limits.min_requests, 1):
            return {
                **result,
                "verdict": "Inconclusive",
                "message": f"the shadow canary scored {rows:.0f} rows; "
                f"analysis needs minRequests={limits.min_requests}",
            }
        disagreement = delta["shadowDisagree"] / rows
        result["disagreement"] = disagreement
        text = f"shadow disagreement {disagreement:.4f} over {rows:.0f} rows"
        if limits.max_disagreement is not None and disagreement > limits.max_disagreement:
            return {
                **result,
                "verdict": "Failed",
                "message": f"{text} exceeds maxDisagreement={limits.max_disagreement}",
            }
        limit = (
            "no limit" if limits.max_disagreement is None else f"maxDisagreement={limits.max_disagreement}"
        )
        return {**result, "verdict": "Passed", "message": f"{text} (within {limit})"}
    requests = delta["canaryRequests"]
    result["canaryRequests"] = requests
    if requests < max(limits.min_requests, 1):
        return {
            **result,
            "verdict": "Inconclusive",
            "message": f"the canary answered {requests:.0f} requests; "
            f"analysis needs minRequests={limits.min_requests}",
        }
    canary_rate = delta["canaryErrors"] / requests
    stable_rate = delta["stableErrors"] / delta["stableRequests"] if delta["stableRequests"] > 0 else 0.0
    result.update(canaryErrorRate=canary_rate, stableErrorRate=stable_rate)
    parts = [f"error rate canary {canary_rate:.4f} vs stable {stable_rate:.4f} over {requests:.0f} requests"]
    failures = []
    if canary_rate - stable_rate > limits.max_error_rate_increase:
        failures.append(f"error rate increase exceeds maxErrorRateIncrease={limits.max_error_rate_increase}")
    canary_p99 = p99(before.get("canaryLatency") or {}, after.get("canaryLatency") or {})
    stable_p99 = p99(before.get("stableLatency") or {}, after.get("stableLatency") or {})
    if canary_p99 is not None and stable_p99 is not None:
        result.update(canaryLatencyP99Seconds=canary_p99, stableLatencyP99Seconds=stable_p99)
        parts.append(f"p99 canary {canary_p99:.4f}s vs stable {stable_p99:.4f}s")
        if canary_p99 > stable_p99 * (1 + limits.max_latency_p99_increase_percent / 100):
            failures.append(
                "p99 latency increase exceeds maxLatencyP99IncreasePercent="
                f"{limits.max_latency_p99_increase_percent}"
            )
    else:
        parts.append("p99 not compared (no version-labelled latency for both versions in this step)")
    if summaries is not None:
        figures, text, breaches = compare_performance(summaries, limits, stable=stable, canary=canary)
        result.update(figures)
        parts.append(text)
        failures += breaches
    message = "; ".join(parts + failures)
    return {**result, "verdict": "Failed" if failures else "Passed", "message": message[:4096]}
