"""Every endpoint of a real ``mlsteward serve`` process, called with a plain HTTP client (httpx)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.component.serving.conftest import Launcher, Server, Store, routing_document

ROW = {
    "income": 42000.0,
    "debt_ratio": 0.31,
    "loan_amount": 12000.0,
    "term_months": 36.0,
    "employment_years": 4.0,
    "credit_history_years": 9.0,
    "delinquencies": 1.0,
    "purpose": "car",
    "home_ownership": "rent",
}
NUMERIC = [k for k, v in ROW.items() if isinstance(v, float)]


def per_feature(rows: int = 2, **overrides: Any) -> dict[str, Any]:
    inputs = []
    for name, value in ROW.items():
        datatype = "FP32" if isinstance(value, float) else "BYTES"
        inputs.append({"name": name, "shape": [rows, 1], "datatype": datatype, "data": [value] * rows})
    return {"inputs": inputs, **overrides}


@pytest.fixture(scope="module")
def server(module_launcher: Launcher, store: Store) -> Server:
    """One server for the read-only tests of this module: champion 1, challenger 2 at a 0% share."""
    document = routing_document(("1", store.digests["v1"]), ("2", store.digests["v2"]), share=0)
    return module_launcher(document)


def test_health_and_server_metadata_answer_as_the_protocol_says(server: Server) -> None:
    assert server.client.get("/v2/health/live").json() == {"live": True}
    assert server.client.get("/v2/health/ready").json() == {"ready": True}
    metadata = server.client.get("/v2").json()
    assert (
        metadata["name"] == "mlsteward"
        and "version" in metadata
        and metadata["extensions"] == ["binary_tensor_data"]
    )


def test_model_metadata_lists_one_input_per_feature_and_both_versions(server: Server) -> None:
    metadata = server.client.get("/v2/models/credit").json()
    assert metadata["name"] == "credit"
    assert metadata["versions"] == ["1", "2"]
    assert metadata["platform"] == "onnx_onnxv1"
    assert [i["name"] for i in metadata["inputs"]] == list(ROW)
    assert {i["datatype"] for i in metadata["inputs"] if i["name"] == "purpose"} == {"BYTES"}
    assert {i["datatype"] for i in metadata["inputs"] if i["name"] == "income"} == {"FP32"}
    assert [o["name"] for o in metadata["outputs"]] == ["label", "probabilities"]
    assert server.client.get("/v2/models/credit/versions/2").json()["versions"] == ["2"]
    assert server.client.get("/v2/models/credit/ready").json() == {"name": "credit", "ready": True}
    assert server.client.get("/v2/models/credit/versions/2/ready").json()["ready"] is True


def test_per_feature_inference_echoes_the_id_and_names_the_version(server: Server) -> None:
    response = server.client.post("/v2/models/credit/infer", json=per_feature(rows=2, id="req-7"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "req-7"
    assert body["model_name"] == "credit" and body["model_version"] == "1"
    assert response.headers["x-model-version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"]["shape"] == [2] and outputs["label"]["datatype"] == "INT64"
    assert outputs["probabilities"]["shape"] == [2, 2]
    probabilities = outputs["probabilities"]["data"]
    assert abs(probabilities[0] + probabilities[1] - 1) < 1e-5


def test_one_bytes_tensor_with_all_features_gives_the_same_answer_as_per_feature_tensors(
    server: Server,
) -> None:
    table = {
        "inputs": [{"name": "input-0", "shape": [1, 9], "datatype": "BYTES", "data": [list(ROW.values())]}]
    }
    flat = {"inputs": [{"name": "x", "shape": [1, 9], "datatype": "BYTES", "data": list(ROW.values())}]}
    answers = [
        server.client.post("/v2/models/credit/infer", json=body).json()["outputs"]
        for body in (table, flat, per_feature(rows=1))
    ]
    assert answers[0] == answers[1] == answers[2]


def test_an_explicit_version_answers_and_outputs_can_be_selected(server: Server) -> None:
    body = per_feature(rows=1, outputs=[{"name": "probabilities"}])
    response = server.client.post("/v2/models/credit/versions/2/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "2"
    assert [o["name"] for o in response.json()["outputs"]] == ["probabilities"]


def test_missing_values_are_imputed_not_refused(server: Server) -> None:
    body = per_feature(rows=1)
    for entry in body["inputs"]:
        if entry["name"] in ("income", "purpose"):
            entry["data"] = [None]
    assert server.client.post("/v2/models/credit/infer", json=body).status_code == 200


def test_kserve_v1_predict_takes_instances_as_objects_or_lists(server: Server) -> None:
    as_objects = server.client.post("/v1/models/credit:predict", json={"instances": [ROW, ROW]})
    assert as_objects.status_code == 200, as_objects.text
    assert len(as_objects.json()["predictions"]) == 2
    as_lists = server.client.post("/v1/models/credit:predict", json={"instances": [list(ROW.values())]})
    assert as_lists.json()["predictions"] == as_objects.json()["predictions"][:1]
    assert as_lists.headers["x-model-version"] == "1"
    assert server.client.get("/v1/models/credit").json()["ready"] is True


def test_reason_codes_are_drawn_from_the_model_inputs(server: Server) -> None:
    body = per_feature(rows=3, parameters={"reason_codes": True})
    response = server.client.post("/v2/models/credit/infer", json=body)
    assert response.status_code == 200, response.text
    codes = {o["name"]: o for o in response.json()["outputs"]}["reason_codes"]
    assert codes["shape"] == [3, 3] and codes["datatype"] == "BYTES"
    assert set(codes["data"]) <= set(ROW)
    risky = dict(ROW, delinquencies=6.0)
    body = {"instances": [risky]}
    body = per_feature(rows=1, parameters={"reason_codes": True})
    for entry in body["inputs"]:
        if entry["name"] == "delinquencies":
            entry["data"] = [6.0]
    codes = {o["name"]: o for o in server.client.post("/v2/models/credit/infer", json=body).json()["outputs"]}
    assert codes["reason_codes"]["data"][0] == "delinquencies"


def test_a_numeric_only_model_takes_one_fp32_tensor_and_answers_a_regression(
    start_server: Any, store: Store
) -> None:
    server: Server = start_server(routing_document(("7", store.digests["reg"]), model="amount"))
    rows = [[42000.0, 0.3, 36.0, 4.0, 9.0], [18000.0, 0.6, 60.0, 1.0, 2.0]]
    body = {"inputs": [{"name": "input-0", "shape": [2, 5], "datatype": "FP32", "data": rows}]}
    response = server.client.post("/v2/models/amount/infer", json=body)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output["name"] == "variable" and output["shape"] == [2, 1] and output["datatype"] == "FP32"
    as_int = {"inputs": [{"name": "t", "shape": [1, 5], "datatype": "INT64", "data": [42000, 0, 36, 4, 9]}]}
    assert server.client.post("/v2/models/amount/infer", json=as_int).status_code == 200
    v1 = server.client.post("/v1/models/amount:predict", json={"instances": rows}).json()
    assert v1["predictions"] == pytest.approx(output["data"], rel=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"inputs": []}', 400, "non-empty list"),
        (
            b'{"inputs": [{"name": "income", "shape": [1], "datatype": "FP32", "data": [1]}]}',
            400,
            "missing feature",
        ),
        (b'{"id": 5, "inputs": []}', 400, "'id' must be a string"),
    ],
)
def test_malformed_bodies_get_a_400_with_a_precise_message(
    server: Server, body: bytes, status: int, fragment: str
) -> None:
    response = server.client.post("/v2/models/credit/infer", content=body)
    assert response.status_code == status
    assert fragment in response.json()["error"]


def _mutate(feature: str, **changes: Any) -> dict[str, Any]:
    body = per_feature(rows=1)
    for entry in body["inputs"]:
        if entry["name"] == feature:
            entry.update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (_mutate("income", data=["lots"]), "holds strings"),
        (_mutate("income", datatype="BYTES"), "numeric feature"),
        (_mutate("purpose", datatype="FP32", data=[1.0]), "categorical feature"),
        (_mutate("income", shape=[1, 2]), "must be [N] or [N, 1]"),
        (_mutate("income", shape=[2, 1], data=[1.0, 2.0]), "rows but the other inputs have"),
        (_mutate("income", data=[1e39]), "too large for a 32-bit float"),
        (_mutate("income", datatype="FP99"), "unknown datatype"),
        (_mutate("income", data=[True]), "booleans"),
        (_mutate("income", name="salary"), "unknown input name 'salary'"),
        (_mutate("purpose", data=[7]), "expected strings or null"),
        ({**per_feature(rows=1), "outputs": [{"name": "nope"}]}, "unknown output 'nope'"),
        ({"inputs": [{"name": "t", "shape": [1, 9], "datatype": "FP32", "data": [1] * 9}]}, "categorical"),
        ({"inputs": [{"name": "t", "shape": [1, 8], "datatype": "BYTES", "data": [1] * 8}]}, "does not fit"),
    ],
)
def test_inputs_that_do_not_fit_the_model_get_a_400_naming_the_input(
    server: Server, body: dict[str, Any], fragment: str
) -> None:
    response = server.client.post("/v2/models/credit/infer", json=body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


def test_unknown_models_versions_and_paths_are_404_and_wrong_methods_405(server: Server) -> None:
    assert server.client.post("/v2/models/nope/infer", json=per_feature()).status_code == 404
    response = server.client.post("/v2/models/credit/versions/9/infer", json=per_feature())
    assert response.status_code == 404 and "no version '9'" in response.json()["error"]
    assert server.client.get("/v2/models/nope").status_code == 404
    assert server.client.get("/v3/anything").status_code == 404
    assert server.client.get("/v2/models/credit/infer").status_code == 405


def test_bodies_and_row_counts_over_the_limits_get_413(start_server: Any, store: Store) -> None:
    server: Server = start_server(
        routing_document(("1", store.digests["v1"])), "--max-body-bytes", "2048", "--max-rows", "4"
    )
    assert server.client.post("/v2/models/credit/infer", content=b" " * 4096).status_code == 413
    response = server.client.post("/v2/models/credit/infer", json=per_feature(rows=5))
    assert response.status_code == 413 and "at most 4" in response.json()["error"]
    assert server.client.post("/v2/models/credit/infer", json=per_feature(rows=4)).status_code == 200


def test_metrics_count_requests_by_model_version_and_code(server: Server) -> None:
    server.client.post("/v2/models/credit/infer", json=per_feature(rows=3))
    server.client.post("/v2/models/credit/infer", content=b"{")
    assert server.metric("mlsteward_serving_requests_total", model="credit", version="1", code="200") >= 1
    assert server.metric("mlsteward_serving_requests_total", model="credit", code="400") >= 1
    assert server.metric("mlsteward_serving_batch_size_rows_count", model="credit", version="1") >= 1
    duration = "mlsteward_serving_request_duration_seconds_count"
    assert server.metric(duration, model="credit", version="1") >= 1  # the version that answered
    assert server.metric(duration, model="credit", version="") >= 1  # refused before a version was picked
    assert server.metric("mlsteward_serving_ready") == 1
    assert server.metric("mlsteward_serving_model_info", version="2", route="challenger") == 1
    text = server.client.get("/metrics").text
    assert "mlsteward_serving_in_flight_requests" in text
    assert "mlsteward_serving_model_load_failures_total" in text
