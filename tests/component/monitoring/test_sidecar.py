"""``mlsteward monitor`` as a real process on 127.0.0.1: ingest, verdicts, bad input, labels."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import numpy as np
import orjson
from prometheus_client.parser import text_string_to_metric_families

MLSTEWARD = pathlib.Path(sys.executable).parent / "mlsteward"


def _post_all(
    monitor: Any, data: dict[str, Any], make_body: Any, rng: np.random.Generator, step: int = 256
) -> int:
    n = len(data["age"])
    for start in range(0, n, step):
        response = monitor.post("/v1/rows", make_body(data, start, min(start + step, n), rng))
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": min(start + step, n) - start}
    return n


def _metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


def test_the_monitor_flags_exactly_the_shifted_features_of_posted_batches(
    monitor_factory: Any, make_columns: Any, make_body: Any
) -> None:
    monitor = monitor_factory()
    rng = np.random.default_rng(1)

    _post_all(monitor, make_columns(rng, 2_000, shifted=True), make_body, rng)
    summary = monitor.get("/summary").json()

    evaluation = summary["evaluation"]
    assert evaluation["rows"] == 2_000
    states = {f["name"]: f["state"] for f in evaluation["features"] if f["role"] == "feature"}
    assert states == {"income": "drift", "purpose": "drift", "age": "ok"}
    assert [f["name"] for f in evaluation["features"]][:2] in (["income", "purpose"], ["purpose", "income"])
    assert evaluation["drifting"] is True


def test_a_malformed_batch_gets_a_precise_4xx_is_counted_and_changes_no_window(
    monitor_factory: Any, make_columns: Any, make_body: Any
) -> None:
    monitor = monitor_factory()
    rng = np.random.default_rng(2)
    data = make_columns(rng, 600)
    _post_all(monitor, {k: v[:300] for k, v in data.items()}, make_body, rng)
    bad_type = make_body(data, 300, 400, rng)
    bad_type["features"]["age"][5] = "forty"
    unknown = make_body(data, 300, 400, rng)
    unknown["features"]["colour"] = ["red"] * 100
    storm = make_body(data, 300, 400, rng)
    storm["features"] = {k: [None] * 100 for k in storm["features"]}

    responses = [
        httpx.post(monitor.url + "/v1/rows", content=b'{"features": [', timeout=10.0),
        monitor.post("/v1/rows", bad_type),
        monitor.post("/v1/rows", unknown),
        monitor.post("/v1/rows", storm),
        monitor.post("/v1/rows", [1, 2, 3]),
    ]

    assert [r.status_code for r in responses] == [400, 422, 422, 422, 422]
    assert [r.json()["reason"] for r in responses] == [
        "malformed_json", "wrong_type", "unknown_feature", "missing_storm", "bad_field",
    ]  # fmt: skip
    assert "features.age" in responses[1].json()["error"]
    assert "colour" in responses[2].json()["error"]
    metrics = monitor.get("/metrics").text
    assert _metric(metrics, "mlsteward_monitor_rejected_rows_total", reason="wrong_type") == 100
    assert _metric(metrics, "mlsteward_monitor_rejected_batches_total", reason="malformed_json") == 1
    assert _metric(metrics, "mlsteward_monitor_rows_total") == 300
    assert monitor.get("/summary").json()["window"]["currentPaneRows"] == 300
    assert monitor.get("/healthz").status_code == 200


def test_a_body_over_the_size_limit_is_refused_with_413(
    monitor_factory: Any, make_columns: Any, make_body: Any
) -> None:
    monitor = monitor_factory(extra=["--max-body-bytes", "2048"])
    rng = np.random.default_rng(3)

    response = monitor.post("/v1/rows", make_body(make_columns(rng, 200), 0, 200, rng))

    assert response.status_code == 413
    assert response.json()["reason"] == "too_large"


def test_delayed_labels_report_accuracy_over_the_window(
    monitor_factory: Any, make_columns: Any, make_body: Any
) -> None:
    monitor = monitor_factory()
    rng = np.random.default_rng(4)
    data = make_columns(rng, 2_000)
    body = make_body(data, 0, 1_000, rng)
    assert monitor.post("/v1/rows", body).status_code == 202
    truth = list(body["prediction"]["label"])
    truth[:100] = ["1" if t == "0" else "0" for t in truth[:100]]  # 90% right

    response = monitor.post("/v1/labels", {"request_ids": body["request_ids"], "labels": truth})
    assert monitor.post("/v1/rows", make_body(data, 1_000, 2_000, rng)).status_code == 202

    assert response.status_code == 202
    assert response.json() == {"accepted": 1_000, "joined": 1_000}
    performance = monitor.get("/summary").json()["performance"]
    assert performance["labeled"] == 1_000
    assert performance["accuracy"] == 0.9
    assert "mlsteward_monitor_accuracy 0.9" in monitor.get("/metrics").text


def test_a_time_based_window_closes_without_traffic(
    monitor_factory: Any, make_columns: Any, make_body: Any
) -> None:
    monitor = monitor_factory({"window": {"size": 100000, "duration": "1s", "minSamples": 1000}})
    rng = np.random.default_rng(5)
    _post_all(monitor, make_columns(rng, 300), make_body, rng)

    deadline = time.monotonic() + 10
    evaluation = None
    while evaluation is None and time.monotonic() < deadline:
        evaluation = monitor.get("/summary").json()["evaluation"]
        time.sleep(0.2)

    assert evaluation is not None
    assert evaluation["state"] == "insufficient_data"


def test_an_artifact_that_does_not_match_its_digest_stops_the_monitor(
    artifact: Any, tmp_path: pathlib.Path
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLSTEWARD_")}

    result = subprocess.run(
        [
            str(MLSTEWARD),
            "monitor",
            "--profile-artifact",
            str(artifact.path),
            "--digest",
            "0" * 64,
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=environment,
    )

    assert result.returncode == 2
    assert "manifest digest" in result.stderr


def test_summary_and_metrics_are_valid_before_any_traffic(monitor_factory: Any) -> None:
    monitor = monitor_factory()

    summary = orjson.loads(monitor.get("/summary").content)
    metrics = monitor.get("/metrics")

    assert summary["evaluation"] is None
    assert summary["schema"] == "mlsteward.io/monitor-summary/v1"
    assert metrics.headers["content-type"].startswith("text/plain")
    assert _metric(metrics.text, "mlsteward_monitor_rows_total") == 0


def test_when_too_many_bodies_are_being_read_a_batch_is_dropped_with_503_and_counted(
    monitor_factory: Any, make_columns: Any, make_body: Any
) -> None:
    monitor = monitor_factory(extra=["--max-concurrent-ingest", "1"])
    rng = np.random.default_rng(6)
    host, port = monitor.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        # A client that announces a body and sends only part of it holds the one reading slot.
        slow.sendall(b"POST /v1/rows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        slow.sendall(b'Content-Length: 100000\r\n\r\n{"features": {')
        time.sleep(0.5)

        response = monitor.post("/v1/rows", make_body(make_columns(rng, 10), 0, 10, rng))

    assert response.status_code == 503
    assert (
        _metric(monitor.get("/metrics").text, "mlsteward_monitor_dropped_batches_total", reason="busy") == 1
    )
    assert monitor.post("/v1/rows", make_body(make_columns(rng, 10), 0, 10, rng)).status_code == 202
