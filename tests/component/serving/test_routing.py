"""Champion and challenger: exact splits, sticky ids, shadow scoring, and hot swaps under load."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import httpx

from tests.component.serving.conftest import Server, Store, routing_document, write_configmap
from tests.component.serving.test_endpoints import per_feature


def _versions(server: Server, count: int, **body: Any) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        response = server.client.post("/v2/models/credit/infer", json=per_feature(rows=1, **body))
        assert response.status_code == 200, response.text
        seen[response.json()["model_version"]] += 1
    return seen


def wait_for_versions(server: Server, versions: list[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.client.get("/v2/models/credit").json().get("versions") == versions:
            return
        time.sleep(0.05)
    raise AssertionError(f"versions never became {versions}:\n{server.log()[-3000:]}")


def test_the_challenger_gets_exactly_its_share_of_requests_without_ids(
    start_server: Any, store: Store
) -> None:
    document = routing_document(("1", store.digests["v1"]), ("2", store.digests["v2"]), share=25)
    server: Server = start_server(document)
    assert _versions(server, 200) == {"1": 150, "2": 50}
    assert server.metric("mlsteward_serving_requests_total", model="credit", version="2", code="200") == 50
    # latency per version too: the canary analysis compares the two versions' p99
    duration = "mlsteward_serving_request_duration_seconds_count"
    assert server.metric(duration, model="credit", version="2") == 50
    assert server.metric(duration, model="credit", version="1") == 150


def test_a_request_id_always_reaches_the_same_version(start_server: Any, store: Store) -> None:
    document = routing_document(("1", store.digests["v1"]), ("2", store.digests["v2"]), share=30)
    server: Server = start_server(document)
    for rid in ("alpha", "bravo", "charlie", "delta"):
        assert len(_versions(server, 5, id=rid)) == 1
    spread = collections.Counter(
        server.client.post("/v2/models/credit/infer", json=per_feature(rows=1, id=f"r{i}")).json()[
            "model_version"
        ]
        for i in range(300)
    )
    assert 60 <= spread["2"] <= 120  # 30% of 300, by a stable hash


def test_shadow_mode_answers_with_the_champion_and_measures_agreement(
    start_server: Any, store: Store
) -> None:
    document = routing_document(("1", store.digests["v1"]), ("2", store.digests["v2"]), mode="shadow")
    server: Server = start_server(document)
    assert _versions(server, 40) == {"1": 40}
    deadline = time.monotonic() + 10
    total = 0.0
    while time.monotonic() < deadline:
        total = sum(
            server.metric("mlsteward_serving_shadow_rows_total", outcome=o) for o in ("agree", "disagree")
        )
        if total >= 40:
            break
        time.sleep(0.05)
    assert total == 40
    assert server.metric("mlsteward_serving_model_info", version="2", route="shadow") == 1


def test_swapping_champion_and_challenger_under_load_fails_no_request(
    start_server: Any, store: Store
) -> None:
    v1, v2 = ("1", store.digests["v1"]), ("2", store.digests["v2"])
    server: Server = start_server(routing_document(v1), configmap=True)
    folder = server.routing.parent
    stop = threading.Event()
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def hammer() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post("/v2/models/credit/infer", json=per_feature(rows=2))
                    outcome = (response.status_code, response.json().get("model_version", response.text))
                except httpx.HTTPError as error:
                    outcome = (0, repr(error))
                with lock:
                    results.append(outcome)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        steps = [
            (routing_document(v1, v2, share=50), ["1", "2"]),
            (routing_document(v2, v1, share=10), ["2", "1"]),
            (routing_document(v2), ["2"]),
            (routing_document(v1), ["1"]),
        ]
        for document, versions in steps:
            time.sleep(0.4)
            write_configmap(folder, document)
            wait_for_versions(server, versions)
        time.sleep(0.4)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:5]
    assert len(results) > 50
    assert {version for _, version in results} == {"1", "2"}
    assert server.metric("mlsteward_serving_routing_reloads_total", outcome="applied") == 5


def test_a_routing_change_to_a_missing_artifact_keeps_the_current_version_serving(
    start_server: Any, store: Store
) -> None:
    server: Server = start_server(routing_document(("1", store.digests["v1"])))
    server.routing.write_text(
        '{"model": "credit", "champion": {"version": "9", "digest": "' + "ab" * 32 + '"}}'
    )
    deadline = time.monotonic() + 10
    while server.metric("mlsteward_serving_routing_reloads_total", outcome="failed") < 1:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    assert server.client.get("/v2/health/ready").status_code == 200
    assert _versions(server, 3) == {"1": 3}
    assert "still serving credit version(s) 1" in server.log()
    server.routing.write_text("{broken")
    deadline = time.monotonic() + 10
    while server.metric("mlsteward_serving_model_load_failures_total", reason="routing_invalid") < 1:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    assert _versions(server, 1) == {"1": 1}
