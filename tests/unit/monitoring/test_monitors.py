"""The monitor end to end in one process, with simulated time: verdicts, windows, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats
from scipy.spatial import distance

from mlsteward.monitoring import batches, metrics, monitors, profiles, verdicts, views, windows
from mlsteward.serving import feed

SHIFTED = {"age", "balance", "purpose", "channel"}


def _monitor(
    reference: profiles.Reference,
    *,
    size: int = 5_000,
    kind: str = "tumbling",
    duration: float | None = None,
    min_samples: int = 1_000,
    consecutive: int = 2,
    fairness: dict[str, float] | None = None,
) -> monitors.Monitor:
    return monitors.Monitor(
        reference,
        verdicts.Rules(consecutive_windows=consecutive, min_samples=min_samples),
        windows.WindowSpec(kind, size, duration, min_samples, panes=5),  # type: ignore[arg-type]
        monitors.Options(fairness_limits=fairness or {}, min_group_rows=10),
        now=0.0,
    )


def _feed(
    monitor: monitors.Monitor, columns: dict[str, Any], make_batch: Any, now: float, step: int = 500
) -> None:
    n = len(columns["age"])
    for start in range(0, n, step):
        document = make_batch(columns, start, min(start + step, n))
        batch = batches.parse(
            document, monitor.layout, max_rows=100_000, max_missing_share=0.5, metadata_keys=["sex"]
        )
        monitor.ingest(batch, now)


def _states(evaluation: verdicts.Evaluation) -> dict[str, str]:
    return {v.column.key: v.state for v in evaluation.columns if v.column.role == "feature"}


def test_exactly_the_shifted_features_drift_at_default_thresholds(
    reference: profiles.Reference, shifted_data: dict[str, Any], make_batch: Any
) -> None:
    monitor = _monitor(reference)

    _feed(monitor, shifted_data, make_batch, now=10.0)

    assert monitor.evaluation is not None
    drifting = {name for name, state in _states(monitor.evaluation).items() if state == "drift"}
    assert drifting == SHIFTED


def test_no_feature_drifts_on_fresh_data_from_the_training_distribution(
    reference: profiles.Reference, unshifted_data: dict[str, Any], make_batch: Any
) -> None:
    monitor = _monitor(reference)

    _feed(monitor, unshifted_data, make_batch, now=10.0)

    assert monitor.evaluation is not None
    assert set(_states(monitor.evaluation).values()) == {"ok"}
    assert monitor.evaluation.state == "ok"


def test_window_scores_match_scipy_on_the_same_rows(
    reference: profiles.Reference,
    reference_data: dict[str, Any],
    shifted_data: dict[str, Any],
    make_batch: Any,
) -> None:
    monitor = _monitor(reference)
    _feed(monitor, shifted_data, make_batch, now=10.0)
    assert monitor.evaluation is not None
    by_name = {v.column.key: v for v in monitor.evaluation.columns}

    for name in ("age", "income", "balance", "tenure"):
        raw = stats.wasserstein_distance(reference_data[name], shifted_data[name]) / np.std(
            reference_data[name]
        )
        assert by_name[name].scores["wasserstein"].value == pytest.approx(raw, abs=0.03), name
    for name in ("purpose", "region", "channel"):
        column = by_name[name].column
        expected = distance.jensenshannon(
            column.reference.counts / column.reference.counts.sum(),
            monitor.evaluation.current.column(column) / 5_000,
        )
        assert by_name[name].scores["jensen_shannon"].value == pytest.approx(expected, abs=1e-9), name


def test_a_window_below_the_minimum_sample_size_is_insufficient_data_not_a_pass(
    reference: profiles.Reference, shifted_data: dict[str, Any], make_batch: Any
) -> None:
    monitor = _monitor(reference, size=100_000, duration=60.0)
    _feed(monitor, {k: v[:500] for k, v in shifted_data.items()}, make_batch, now=10.0)

    monitor.advance(now=61.0)  # the window closes by time with 500 rows

    assert monitor.evaluation is not None
    assert monitor.evaluation.rows == 500
    assert monitor.evaluation.state == "insufficient_data"
    assert set(_states(monitor.evaluation).values()) == {"insufficient_data"}


def test_drifting_needs_the_configured_number_of_consecutive_breaching_windows(
    reference: profiles.Reference,
    shifted_data: dict[str, Any],
    unshifted_data: dict[str, Any],
    make_batch: Any,
) -> None:
    monitor = _monitor(reference, size=2_500, consecutive=2)
    first_half = {k: v[:2_500] for k, v in shifted_data.items()}
    second_half = {k: v[2_500:] for k, v in shifted_data.items()}

    _feed(monitor, first_half, make_batch, now=1.0)
    first = monitor.evaluation
    _feed(monitor, second_half, make_batch, now=2.0)
    second = monitor.evaluation
    _feed(monitor, {k: v[:2_500] for k, v in unshifted_data.items()}, make_batch, now=3.0)
    third = monitor.evaluation

    assert first is not None and second is not None and third is not None
    age = [next(v for v in e.columns if v.column.key == "age") for e in (first, second, third)]
    assert [(v.state, v.consecutive, v.drifting) for v in age] == [
        ("drift", 1, False),
        ("drift", 2, True),
        ("ok", 0, False),
    ]


def test_time_closes_a_tumbling_window_even_without_traffic(reference: profiles.Reference) -> None:
    monitor = _monitor(reference, size=10_000, duration=30.0)

    monitor.advance(now=29.0)
    assert monitor.evaluation is None
    monitor.advance(now=31.0)

    assert monitor.evaluation is not None
    assert monitor.evaluation.rows == 0
    assert monitor.evaluation.state == "insufficient_data"


def test_a_sliding_window_covers_the_last_panes_and_moves_by_one_pane(
    reference: profiles.Reference, unshifted_data: dict[str, Any], make_batch: Any
) -> None:
    monitor = _monitor(reference, size=2_500, kind="sliding")  # 5 panes of 500 rows

    _feed(monitor, unshifted_data, make_batch, now=1.0)  # 5,000 rows = 10 panes

    assert monitor.windows.windows_closed == 10
    assert monitor.evaluation is not None
    assert monitor.evaluation.rows == 2_500


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d["features"].update(unknown=[1.0] * len(d["request_ids"])), "unknown_feature"),
        (lambda d: d["features"].pop("age"), "missing_feature"),
        (lambda d: d["features"].update(age=d["features"]["age"][:-1]), "length_mismatch"),
        (lambda d: d["features"]["age"].__setitem__(0, "forty"), "wrong_type"),
        (lambda d: d["features"]["age"].__setitem__(0, True), "wrong_type"),
        (lambda d: d["features"]["purpose"].__setitem__(0, 3), "wrong_type"),
        (lambda d: d["features"]["purpose"].__setitem__(0, ["car"]), "wrong_type"),
        (lambda d: d["prediction"].update(score=None), "bad_field"),
        (lambda d: d["metadata"]["sex"].__setitem__(0, ["F"]), "wrong_type"),
        (lambda d: d.update(route="canary"), "bad_field"),
        (lambda d: d.update(features=[1, 2]), "bad_field"),
        (
            lambda d: d["features"].update({k: [None] * len(v) for k, v in d["features"].items()}),
            "missing_storm",
        ),
    ],
)
def test_a_bad_batch_is_rejected_with_its_reason_and_changes_no_window(
    reference: profiles.Reference, shifted_data: dict[str, Any], make_batch: Any, mutate: Any, reason: str
) -> None:
    monitor = _monitor(reference)
    _feed(monitor, {k: v[:1000] for k, v in shifted_data.items()}, make_batch, now=1.0)
    before = monitor.windows.current.summary.copy()
    document = make_batch(shifted_data, 1000, 1100)
    mutate(document)

    with pytest.raises(batches.BatchError) as caught:
        batches.parse(
            document, monitor.layout, max_rows=100_000, max_missing_share=0.5, metadata_keys=["sex"]
        )

    assert caught.value.reason == reason
    after = monitor.windows.current.summary
    np.testing.assert_array_equal(after.counts, before.counts)
    assert after.rows == before.rows


def test_a_batch_over_the_row_limit_is_refused(
    reference: profiles.Reference, shifted_data: dict[str, Any], make_batch: Any
) -> None:
    monitor = _monitor(reference)

    with pytest.raises(batches.BatchError) as caught:
        batches.parse(make_batch(shifted_data, 0, 300), monitor.layout, max_rows=256, max_missing_share=0.5)

    assert caught.value.reason == "too_many_rows"


def test_selection_rate_per_group_and_the_parity_difference_cover_the_window(
    reference: profiles.Reference, unshifted_data: dict[str, Any], make_batch: Any
) -> None:
    monitor = _monitor(reference, size=1_000, fairness={"sex": 0.1})
    document = make_batch(unshifted_data, 0, 1_000)
    document["metadata"]["sex"] = ["F"] * 500 + ["M"] * 500
    document["prediction"]["label"] = ["1"] * 300 + ["0"] * 200 + ["1"] * 100 + ["0"] * 400

    monitor.ingest(
        batches.parse(
            document, monitor.layout, max_rows=10_000, max_missing_share=0.5, metadata_keys=["sex"]
        ),
        1.0,
    )

    assert monitor.window_report is not None
    (sex,) = monitor.window_report.fairness
    assert sex.selection_rate == {"F": 0.6, "M": 0.2}
    assert sex.parity_difference == pytest.approx(0.4)
    assert sex.breached


def test_labels_that_arrive_later_give_accuracy_and_roc_auc_over_the_window(
    reference: profiles.Reference, unshifted_data: dict[str, Any], make_batch: Any
) -> None:
    monitor = _monitor(reference, size=2_000)
    document = make_batch(unshifted_data, 0, 1_000)
    monitor.ingest(batches.parse(document, monitor.layout, max_rows=10_000, max_missing_share=0.5), 1.0)
    predicted = document["prediction"]["label"]
    scores = np.array(document["prediction"]["score"])
    truth = [p if i % 4 else ("0" if p == "1" else "1") for i, p in enumerate(predicted)]  # 75% right
    ids = document["request_ids"] + ["never-seen"]

    joined = monitor.ingest_labels(
        batches.parse_labels({"request_ids": ids, "labels": [*truth, "1"]}, "classification", 10_000), 2.0
    )
    _feed(monitor, {k: v[1_000:2_000] for k, v in unshifted_data.items()}, make_batch, now=3.0)

    assert joined == 1_000
    assert monitor.labels_received["unknown"] == 1
    assert monitor.window_report is not None
    performance = monitor.window_report.performance
    assert performance.accuracy == pytest.approx(0.75)
    positives = np.array([t == "1" for t in truth])
    exact = stats.mannwhitneyu(scores[positives], scores[~positives]).statistic / (
        positives.sum() * (~positives).sum()
    )
    assert performance.roc_auc == pytest.approx(exact, abs=0.002)


def test_labelled_performance_is_kept_per_model_version_and_matches_a_direct_computation(
    reference: profiles.Reference, unshifted_data: dict[str, Any], make_batch: Any
) -> None:
    monitor = _monitor(reference, size=2_000)
    stable, canary = make_batch(unshifted_data, 0, 1_000), make_batch(unshifted_data, 1_000, 1_600)
    canary["model_version"] = "4"
    truth: dict[str, list[str]] = {}
    for document, every in ((stable, 10), (canary, 3)):  # 90% right for version 3, 67% for version 4
        monitor.ingest(batches.parse(document, monitor.layout, max_rows=10_000, max_missing_share=0.5), 1.0)
        predicted = document["prediction"]["label"]
        truth[document["model_version"]] = [
            p if i % every else ("0" if p == "1" else "1") for i, p in enumerate(predicted)
        ]
        monitor.ingest_labels(
            batches.parse_labels(
                {"request_ids": document["request_ids"], "labels": truth[document["model_version"]]},
                "classification",
                10_000,
            ),
            2.0,
        )
    _feed(monitor, {k: v[1_600:2_000] for k, v in unshifted_data.items()}, make_batch, now=3.0)

    by_version = views.summary(monitor, 4.0)["performanceByVersion"]

    assert set(by_version) == {"3", "4"}
    for document in (stable, canary):
        version = document["model_version"]
        predicted = np.array(document["prediction"]["label"])
        scores = np.array(document["prediction"]["score"])
        right = np.array(truth[version])
        positives = right == "1"
        exact_auc = stats.mannwhitneyu(scores[positives], scores[~positives]).statistic / (
            positives.sum() * (~positives).sum()
        )
        assert by_version[version]["labeled"] == len(predicted)
        assert by_version[version]["accuracy"] == pytest.approx(float(np.mean(predicted == right)))
        assert by_version[version]["rocAuc"] == pytest.approx(exact_auc, abs=0.002)
        assert by_version[version]["rmse"] is None
    assert by_version["4"]["accuracy"] < by_version["3"]["accuracy"] - 0.2
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(metrics.MonitorCollector(monitor))
    exposed = {
        (s.name, s.labels.get("version")): s.value
        for family in text_string_to_metric_families(prometheus_client.generate_latest(registry).decode())
        for s in family.samples
    }
    for version, figures in by_version.items():
        assert exposed["mlsteward_monitor_labeled_rows_by_version", version] == figures["labeled"]
        assert exposed["mlsteward_monitor_accuracy_by_version", version] == pytest.approx(figures["accuracy"])
        assert exposed["mlsteward_monitor_roc_auc_by_version", version] == pytest.approx(figures["rocAuc"])
    assert ("mlsteward_monitor_rmse_by_version", "3") not in exposed


def test_a_sliding_window_by_time_moves_one_pane_duration_at_a_time(
    reference: profiles.Reference, unshifted_data: dict[str, Any], make_batch: Any
) -> None:
    monitor = _monitor(reference, size=1_000_000, kind="sliding", duration=50.0)  # 5 panes of 10 s
    for second in range(0, 60, 2):  # 100 rows every 2 s for a minute
        _feed(
            monitor,
            {k: v[second * 50 : second * 50 + 100] for k, v in unshifted_data.items()},
            make_batch,
            second,
        )

    monitor.advance(now=60.0)

    assert monitor.windows.windows_closed == 6
    assert monitor.evaluation is not None
    assert monitor.evaluation.rows == 2_500  # the last five panes of 500 rows
    assert monitor.evaluation.ended - monitor.evaluation.started == pytest.approx(50.0)  # the duration


def test_a_binary_body_with_multi_row_requests_counts_and_joins_like_one_id_per_row(
    reference: profiles.Reference, unshifted_data: dict[str, Any], make_batch: Any
) -> None:
    document = make_batch(unshifted_data, 0, 1_000)
    counts = [1, 8, 8, 8, 8] * 30 + [8, 1, 1]  # 153 requests, 1,000 rows
    assert sum(counts) == 1_000
    request_ids = [f"r{i}" for i in range(len(counts))]
    row_ids = [
        rid if n == 1 else f"{rid}:{j}" for rid, n in zip(request_ids, counts, strict=True) for j in range(n)
    ]
    compact = {
        **document,
        "request_ids": request_ids,
        "request_rows": np.array(counts),
        "features": {
            name: np.array(values, np.float64) if isinstance(values[0], float) else values
            for name, values in document["features"].items()
        },
        "prediction": {  # labels as indices into the names, as the server sends them
            "label": np.array(
                [["0", "1"].index(label) for label in document["prediction"]["label"]], np.int32
            ),
            "label_names": ["0", "1"],
            "score": np.array(document["prediction"]["score"]),
        },
    }
    per_row = {**document, "request_ids": row_ids}
    predicted = document["prediction"]["label"]
    truth = [p if i % 4 else ("0" if p == "1" else "1") for i, p in enumerate(predicted)]
    asked = [*row_ids[::-1], "r1", "r1:8", "r0:0"]  # a multi-row id alone, past its rows, a one-row id + ":0"
    labels = batches.parse_labels(
        {"request_ids": asked, "labels": truth[::-1] + ["1"] * 3}, "classification", 2_000
    )
    results = []
    for body in (per_row, batches.decode_binary(feed.encode_binary(compact), compact=True)):
        monitor = _monitor(reference, size=1_000)
        batch = batches.parse(body, monitor.layout, max_rows=10_000, max_missing_share=0.5)
        monitor.ingest(batch, 1.0)
        joined = monitor.ingest_labels(labels, 2.0)
        monitor.advance(3.0)
        assert monitor.window_report is not None and monitor.evaluation is not None
        results.append(
            (
                joined,
                len(monitor.join),
                monitor.window_report.performance,
                monitor.evaluation.current.counts.tolist(),
            )
        )

    assert results[0][:2] == (1_000, 0)
    assert results[1] == results[0]
