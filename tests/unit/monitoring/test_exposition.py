"""/metrics, /summary and /report from the same monitor state."""

from __future__ import annotations

from typing import Any

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlsteward.monitoring import batches, metrics, monitors, profiles, report, verdicts, views, windows


@pytest.fixture
def fed_monitor(
    reference: profiles.Reference, shifted_data: dict[str, Any], make_batch: Any
) -> monitors.Monitor:
    monitor = monitors.Monitor(
        reference,
        verdicts.Rules(min_samples=1_000),
        windows.WindowSpec("tumbling", 2_000, None, 1_000),
        monitors.Options(fairness_limits={"sex": 0.1}),
        now=0.0,
        digest="d" * 64,
    )
    for start in range(0, 2_000, 500):
        document = make_batch(shifted_data, start, start + 500)
        monitor.ingest(
            batches.parse(
                document, monitor.layout, max_rows=10_000, max_missing_share=0.5, metadata_keys=["sex"]
            ),
            5.0,
        )
    monitor.reject("wrong_type", 7)
    return monitor


def _samples(monitor: monitors.Monitor) -> dict[str, list[Any]]:
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(metrics.MonitorCollector(monitor))
    text = prometheus_client.generate_latest(registry).decode()
    families: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            families.setdefault(sample.name, []).append(sample)
    return families


def test_the_collector_exposes_bucket_counters_that_add_up_to_the_rows(fed_monitor: monitors.Monitor) -> None:
    samples = _samples(fed_monitor)

    age = [s for s in samples["mlsteward_monitor_bucket_rows_total"] if s.labels["column"] == "age"]

    assert sum(s.value for s in age) == 2_000
    assert {s.labels["bucket"] for s in age} >= {"<below>", "<above>", "<missing>", "1", "10"}
    assert samples["mlsteward_monitor_rows_total"][0].value == 2_000


def test_the_collector_exposes_scores_verdicts_and_rejections(fed_monitor: monitors.Monitor) -> None:
    samples = _samples(fed_monitor)

    scores = {
        (s.labels["column"], s.labels["test"]): s.value for s in samples["mlsteward_monitor_drift_score"]
    }
    states = {
        s.labels["column"]: s.labels["state"]
        for s in samples["mlsteward_monitor_column_drift_state"]
        if s.value == 1.0
    }
    rejected = {s.labels["reason"]: s.value for s in samples["mlsteward_monitor_rejected_rows_total"]}
    assert scores[("age", "wasserstein")] > 0.1
    assert states["age"] == "drift" and states["income"] == "ok"
    assert rejected["wrong_type"] == 7
    assert samples["mlsteward_monitor_predictions_total"][0].labels["model_version"] == "3"
    assert "mlsteward_monitor_demographic_parity_difference" in samples


def test_no_label_carries_a_request_id(fed_monitor: monitors.Monitor) -> None:
    for family in _samples(fed_monitor).values():
        for sample in family:
            assert not any(value.startswith("req-") for value in sample.labels.values())


def test_the_summary_lists_features_worst_first_with_the_api_fields(fed_monitor: monitors.Monitor) -> None:
    document = views.summary(fed_monitor, now=10.0)

    features = document["evaluation"]["features"]
    assert {"name", "test", "score", "threshold", "drifting"} <= set(features[0])
    states = [f["state"] for f in features]
    assert states == sorted(states, key=lambda s: s != "drift")
    assert document["ingest"]["rejectedBatches"]["wrong_type"] == 1


def test_the_report_shows_each_column_with_two_histograms_and_escapes_names(
    fed_monitor: monitors.Monitor,
) -> None:
    page = report.render(fed_monitor, now=10.0)

    assert page.count("<svg") == 2 * len(fed_monitor.layout.columns)
    assert page.index(">age ") < page.index(">income ")
    assert "<script" not in page
