"""A real Prometheus scrapes two monitor replicas; PromQL sums their bucket counters."""

from __future__ import annotations

import pathlib
import time
from typing import Any

import numpy as np
import pytest


def _wait_for(
    prometheus: Any, expression: str, predicate: Any, timeout: float = 30.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = prometheus.query(expression)
        if predicate(result):
            return result
        time.sleep(0.5)
    raise AssertionError(f"{expression} never satisfied the check; last result {result}")


def test_prometheus_sums_bucket_counters_across_replicas_and_increase_sees_new_rows(
    monitor_factory: Any, make_columns: Any, make_body: Any, prometheus_runner: Any, tmp_path: pathlib.Path
) -> None:
    config = {"window": {"size": 1_000, "minSamples": 500}, "drift": {"consecutiveWindows": 1}}
    replicas = [monitor_factory(config), monitor_factory(config)]
    targets = [m.url.removeprefix("http://") for m in replicas]
    rng = np.random.default_rng(7)
    data = make_columns(rng, 1_500, shifted=True)

    with prometheus_runner(targets, tmp_path) as prometheus:
        _wait_for(prometheus, "up", lambda r: len(r) == 2 and all(s["value"][1] == "1" for s in r))
        time.sleep(2.5)  # a few scrapes with the counters at zero, so increase() starts from them
        for replica, (start, stop) in zip(replicas, [(0, 1_000), (1_000, 1_500)], strict=True):
            for begin in range(start, stop, 250):
                assert replica.post("/v1/rows", make_body(data, begin, begin + 250, rng)).status_code == 202
        expected = {p: data["purpose"].count(p) for p in set(data["purpose"])}

        total = _wait_for(
            prometheus,
            'sum by (bucket) (mlsteward_monitor_bucket_rows_total{role="feature",column="purpose"})',
            lambda r: sum(float(s["value"][1]) for s in r) == 1_500,
        )
        time.sleep(3.0)  # more scrapes after the rows, for increase()
        selector = 'mlsteward_monitor_bucket_rows_total{role="feature",column="purpose"}'
        increase = prometheus.query(f"sum by (bucket) (increase({selector}[5m]))")
        # docs/monitoring.md's expression: the Deployment's share per bucket over a range.
        per_bucket = f"sum by (bucket) (increase({selector}[5m]))"
        shares = prometheus.query(f"{per_bucket} / ignoring(bucket) group_left sum(increase({selector}[5m]))")
        scores = prometheus.query('mlsteward_monitor_drift_score{column="income",test="wasserstein"}')

    by_bucket = {s["metric"]["bucket"]: float(s["value"][1]) for s in total}
    assert {b: v for b, v in by_bucket.items() if v} == expected
    grown = {s["metric"]["bucket"]: float(s["value"][1]) for s in increase}
    for bucket, count in expected.items():
        # increase() extrapolates a little past the last scrape; a few percent at most here.
        assert count <= grown[bucket] <= count * 1.15, (bucket, grown[bucket], count)
    share = {s["metric"]["bucket"]: float(s["value"][1]) for s in shares}
    assert sum(share.values()) == pytest.approx(1.0)
    assert share["car"] == pytest.approx(expected["car"] / 1_500, abs=0.01)
    # Only the replica that received 1,000 rows closed a window; its income drifts.
    assert [float(s["value"][1]) > 0.1 for s in scores] == [True]
