"""Refusing tampered artifacts, feeding the monitor, and draining on SIGTERM, with real processes."""

from __future__ import annotations

import http.server
import json
import pathlib
import shutil
import signal
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from mlsteward.monitoring import batches
from tests.component.serving.conftest import Server, Store, routing_document
from tests.component.serving.test_endpoints import ROW, per_feature


def test_a_tampered_artifact_is_refused_and_the_server_stays_not_ready(
    start_server: Any, store: Store, tmp_path: pathlib.Path
) -> None:
    root = tmp_path / "tampered-store"
    shutil.copytree(store.artifact("v1"), root / "artifacts" / "sha256" / store.digests["v1"])
    model = root / "artifacts" / "sha256" / store.digests["v1"] / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-10] ^= 0xFF
    model.write_bytes(bytes(data))
    server: Server = start_server(routing_document(("1", store.digests["v1"])), ready=False, store_root=root)
    deadline = time.monotonic() + 15
    while server.metric("mlsteward_serving_model_load_failures_total", reason="digest_mismatch") < 1:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    ready = server.client.get("/v2/health/ready")
    assert ready.status_code == 503 and "digest_mismatch" in ready.json()["error"]
    response = server.client.post("/v2/models/credit/infer", json=per_feature())
    assert response.status_code == 503 and "model.onnx does not match its sha256" in response.json()["error"]
    assert server.client.get("/v2/models/credit/ready").status_code == 503
    assert server.metric("mlsteward_serving_ready") == 0
    assert "routing change refused (digest_mismatch)" in server.log()
    assert server.client.get("/v2/health/live").status_code == 200


class _Monitor(http.server.BaseHTTPRequestHandler):
    batches: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/rows":
            # The server sends the binary body (contracts §4); read it as the monitor does.
            decoded = batches.decode_binary(body)
            document = json.loads(orjson.dumps(decoded, option=orjson.OPT_SERIALIZE_NUMPY))
            self.batches.append(document)
            answer = json.dumps({"accepted": len(document["request_ids"])}).encode()
            self.send_response(202)
        else:
            answer = b'{"error": "no such path"}'
            self.send_response(404)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def monitor() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in drift monitor on 127.0.0.1 that records every POST /v1/rows body."""
    batches: list[dict[str, Any]] = []
    handler = type("Handler", (_Monitor,), {"batches": batches})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", batches
    server.shutdown()
    server.server_close()


def test_scored_rows_reach_the_monitor_column_oriented_with_sensitive_metadata(
    start_server: Any, store: Store, monitor: tuple[str, list[dict[str, Any]]]
) -> None:
    url, batches = monitor
    document = routing_document(("1", store.digests["v1"]), ("2", store.digests["v2"]), mode="shadow")
    server: Server = start_server(document, "--monitor-url", url, "--monitor-flush-interval", "0.1")
    body = per_feature(rows=2, id="loan-1")
    body["inputs"].append({"name": "sex", "shape": [2], "datatype": "BYTES", "data": ["F", "M"]})
    assert server.client.post("/v2/models/credit/infer", json=body).status_code == 200
    deadline = time.monotonic() + 10
    while len({b["route"] for b in batches}) < 2:
        assert time.monotonic() < deadline, f"monitor got {batches}\n{server.log()[-2000:]}"
        time.sleep(0.05)
    champion = next(b for b in batches if b["route"] == "champion")
    assert champion["model_version"] == "1"
    assert champion["request_ids"] == ["loan-1:0", "loan-1:1"]
    assert set(champion["features"]) == set(ROW)
    assert champion["features"]["purpose"] == ["car", "car"]
    assert champion["features"]["income"] == [42000.0, 42000.0]
    assert len(champion["prediction"]["label"]) == 2 and len(champion["prediction"]["score"]) == 2
    assert champion["metadata"] == {"sex": ["F", "M"]}
    shadow = next(b for b in batches if b["route"] == "shadow")
    assert shadow["model_version"] == "2" and shadow["request_ids"] == ["loan-1:0", "loan-1:1"]
    # The monitor records a batch before it answers; the server counts it once the answer is read.
    deadline = time.monotonic() + 5
    while server.metric("mlsteward_serving_monitor_sent_rows_total") < 4:
        assert time.monotonic() < deadline, server.log()[-2000:]
        time.sleep(0.05)
    assert server.metric("mlsteward_serving_monitor_sent_rows_total") == 4


def test_an_unreachable_monitor_costs_counted_drops_never_failed_requests(
    start_server: Any, store: Store
) -> None:
    from tests.component.serving.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    server: Server = start_server(
        routing_document(("1", store.digests["v1"])),
        "--monitor-url",
        url,
        "--monitor-flush-interval",
        "0.1",
        "--monitor-queue-rows",
        "10",
    )
    for _ in range(8):
        assert server.client.post("/v2/models/credit/infer", json=per_feature(rows=3)).status_code == 200
    deadline = time.monotonic() + 10
    while True:
        dropped = server.metric("mlsteward_serving_monitor_dropped_rows_total", reason="send_failed")
        dropped += server.metric("mlsteward_serving_monitor_dropped_rows_total", reason="queue_full")
        if dropped == 24:
            break
        assert time.monotonic() < deadline, f"dropped {dropped}\n{server.log()[-2000:]}"
        time.sleep(0.05)


def test_sigterm_turns_readiness_off_finishes_in_flight_work_and_exits_zero(
    start_server: Any, store: Store
) -> None:
    server: Server = start_server(routing_document(("1", store.digests["v1"])), "--drain-delay", "1.5")
    server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while server.client.get("/v2/health/ready").status_code != 503:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # Still serving during the drain delay, so the endpoints controller can catch up.
    assert server.client.post("/v2/models/credit/infer", json=per_feature()).status_code == 200
    assert server.process.wait(15) == 0
    assert "received SIGTERM" in server.log()


def test_several_processes_share_one_port_with_reuse_port(start_server: Any, store: Store) -> None:
    from tests.component.serving.conftest import free_port

    port = free_port()
    document = routing_document(("1", store.digests["v1"]))
    first: Server = start_server(document, "--reuse-port", port=port)
    second: Server = start_server(document, "--reuse-port", port=port)
    deadline = time.monotonic() + 20
    while "serving credit: champion 1" not in second.log():
        assert second.process.poll() is None and time.monotonic() < deadline, second.log()
        time.sleep(0.05)

    def answered(count: int) -> int:
        ok = 0
        for _ in range(count):  # a new connection each time: the kernel spreads them over the processes
            with httpx.Client(base_url=first.url, timeout=10) as client:
                ok += client.post("/v2/models/credit/infer", json=per_feature()).status_code == 200
        return ok

    assert answered(20) == 20
    assert first.stop() == 0  # one worker leaves; the other keeps the port
    assert second.process.poll() is None
    assert answered(20) == 20


def test_the_uvicorn_transport_serves_the_same_application(start_server: Any, store: Store) -> None:
    server: Server = start_server(routing_document(("1", store.digests["v1"])), "--http", "uvicorn")
    response = server.client.post("/v2/models/credit/infer", json=per_feature(rows=2, id="u"))
    assert response.status_code == 200 and response.json()["id"] == "u"
    assert server.client.post("/v2/models/credit/infer", content=b"{").status_code == 400
    assert server.client.post("/v2/models/credit/infer", content=b" " * (5 << 20)).status_code == 413
    # Binary tensor data: the Inference-Header-Content-Length header reaches the application.
    document = per_feature(rows=2, id="b", parameters={"binary_data_output": True})
    income = document["inputs"][0]
    raw = struct.pack("<2f", *income.pop("data"))
    income.update(datatype="FP32", parameters={"binary_data_size": len(raw)})
    header = orjson.dumps(document)
    response = server.client.post(
        "/v2/models/credit/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    answer = orjson.loads(response.content[:length])
    assert answer["id"] == "b" and answer["outputs"][1]["parameters"] == {"binary_data_size": 2 * 2 * 4}
    assert len(response.content) == length + 2 * 8 + 2 * 2 * 4  # INT64 labels, FP32 probabilities
    assert server.stop() == 0
