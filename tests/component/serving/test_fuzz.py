"""Fuzz a real server against its own OpenAPI document (schemathesis) and with targeted tensors (hypothesis).

The property is the issue's: no input produces a 5xx or kills the process.
"""

from __future__ import annotations

import struct
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.component.serving.conftest import Launcher, Server, Store, routing_document
from tests.component.serving.test_endpoints import ROW

FUZZ = settings(
    max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)


@pytest.fixture(scope="module")
def server(module_launcher: Launcher, store: Store) -> Server:
    document = routing_document(("1", store.digests["v1"]), ("2", store.digests["v2"]), share=50)
    return module_launcher(document)


@pytest.fixture(scope="module")
def schema(server: Server) -> Any:
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def _check(server: Server, status: int, what: str) -> None:
    assert status < 500, f"{what} answered {status}"
    assert server.process.poll() is None, f"the server died on {what}:\n{server.log()[-3000:]}"


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_no_request_the_openapi_document_allows_or_forbids_gets_a_5xx(
    server: Server, schema: Any, mode: Any
) -> None:
    strategy = schema.as_strategy(generation_mode=mode)

    @FUZZ
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=server.url, timeout=10)
        _check(server, response.status_code, f"{case.method} {case.formatted_path} {str(case.body)[:300]}")

    run()


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_inference_bodies_for_the_served_model_never_get_a_5xx(
    server: Server, schema: Any, mode: Any
) -> None:
    strategy = schema["/v2/models/{name}/infer"]["POST"].as_strategy(
        generation_mode=mode, path_parameters={"name": "credit"}
    )

    @FUZZ
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=server.url, timeout=10)
        _check(server, response.status_code, f"infer {str(case.body)[:300]}")

    run()


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)
_DATATYPES = st.sampled_from(["FP32", "FP64", "INT64", "INT8", "UINT8", "BOOL", "BYTES", "FP16"])


@st.composite
def _tensors(draw: st.DrawFn) -> dict[str, Any]:
    """A valid per-feature request with up to three random mutations (names, shapes, datatypes, data)."""
    rows = draw(st.integers(1, 3))
    inputs: list[dict[str, Any]] = [
        {
            "name": name,
            "shape": [rows, 1],
            "datatype": "FP32" if isinstance(value, float) else "BYTES",
            "data": [value] * rows,
        }
        for name, value in ROW.items()
    ]
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(inputs) - 1))
        entry = inputs[position]
        kind = draw(st.sampled_from(["datatype", "shape", "data", "element", "name", "drop", "add", "field"]))
        if kind == "datatype":
            entry["datatype"] = draw(_DATATYPES)
        elif kind == "shape":
            entry["shape"] = draw(st.lists(st.integers(-1, 4), max_size=3))
        elif kind == "data":
            entry["data"] = draw(_JSON_VALUES)
        elif kind == "element" and entry["data"]:
            entry["data"][0] = draw(_JSON_VALUES)
        elif kind == "name":
            entry["name"] = draw(st.sampled_from([*ROW, "sex", "input-0", ""]))
        elif kind == "drop" and len(inputs) > 1:
            inputs.pop(position)
        elif kind == "add":
            inputs.append({"name": "sex", "shape": [rows], "datatype": "BYTES", "data": draw(_JSON_VALUES)})
        elif kind == "field":
            entry.pop(draw(st.sampled_from(["name", "shape", "datatype", "data"])))
    body: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        body["outputs"] = [{"name": draw(st.sampled_from(["label", "probabilities", "reason_codes", "x"]))}]
    if draw(st.booleans()):
        body["parameters"] = {"reason_codes": draw(st.booleans() | _JSON_VALUES)}
    if draw(st.booleans()):
        body["id"] = draw(st.text(max_size=8) | _JSON_VALUES)
    return body


def test_targeted_tensor_fuzzing_gets_answers_never_5xx(server: Server) -> None:
    statuses: set[int] = set()

    @settings(
        max_examples=250,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    @given(body=_tensors(), v1=st.booleans())
    def run(body: dict[str, Any], v1: bool) -> None:
        if v1:
            names = [entry.get("name") for entry in body["inputs"]]
            data = [entry.get("data") or [None] for entry in body["inputs"]]
            rows = [dict(zip(names, row, strict=False)) for row in zip(*data, strict=False)]
            response = httpx.post(
                f"{server.url}/v1/models/credit:predict", json={"instances": rows}, timeout=10
            )
        else:
            response = httpx.post(f"{server.url}/v2/models/credit/infer", json=body, timeout=10)
        statuses.add(response.status_code)
        _check(server, response.status_code, str(body)[:500])
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}

    run()
    assert 200 in statuses and 400 in statuses  # the generator reaches both sides of validation


_WIDTHS = {"FP32": 4, "FP64": 8, "INT64": 8, "INT8": 1, "UINT8": 1, "BOOL": 1, "FP16": 2}


def _raw_strings(values: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


@st.composite
def _binary_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A valid binary-data request (some inputs binary, some JSON) with up to three random mutations of
    sizes, shapes, datatypes, the bytes and the Inference-Header-Content-Length header."""
    rows = draw(st.integers(1, 3))
    inputs: list[dict[str, Any]] = []
    raws: list[bytes] = []
    for name, value in ROW.items():
        entry: dict[str, Any] = {"name": name, "shape": [rows, 1]}
        if isinstance(value, float):
            entry["datatype"] = "FP32"
            raw = np.full(rows, value, dtype="<f4").tobytes()
        else:
            entry["datatype"] = "BYTES"
            raw = _raw_strings([str(value)] * rows)
        if draw(st.booleans()):
            entry["parameters"] = {"binary_data_size": len(raw)}
            raws.append(raw)
        else:
            entry["data"] = [value] * rows
        inputs.append(entry)
    document: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        document["parameters"] = {"binary_data_output": draw(st.booleans() | _JSON_VALUES)}
    if draw(st.booleans()):
        document["outputs"] = [
            {"name": "probabilities", "parameters": {"binary_data": draw(st.booleans() | _JSON_VALUES)}}
        ]
    header_delta, tail = 0, b""
    for _ in range(draw(st.integers(0, 3))):
        entry = draw(st.sampled_from(inputs))
        kind = draw(st.sampled_from(["size", "shape", "datatype", "bytes", "header", "tail", "both"]))
        if kind == "size" and "parameters" in entry:
            entry["parameters"]["binary_data_size"] = draw(
                st.integers(-2, 64) | st.booleans() | st.none() | st.text(max_size=3) | st.floats()
            )
        elif kind == "shape":
            entry["shape"] = draw(st.lists(st.integers(0, 4), max_size=3))
        elif kind == "datatype":
            entry["datatype"] = draw(st.sampled_from([*_WIDTHS, "BYTES"]))
        elif kind == "bytes" and raws:
            position = draw(st.integers(0, len(raws) - 1))
            raws[position] = draw(st.binary(max_size=24))
        elif kind == "header":
            header_delta = draw(st.integers(-8, 8))
        elif kind == "tail":
            tail = draw(st.binary(min_size=1, max_size=8))
        elif kind == "both" and "parameters" in entry:
            entry["data"] = [1.0] * rows
    header = orjson.dumps(document)
    length = draw(st.sampled_from([str(len(header) + header_delta), "", "x", "-1", str(2**70)]))
    if header_delta == 0 and draw(st.integers(0, 9)) > 0:
        length = str(len(header))  # mostly a correct header, so the generator reaches the tensors
    return header + b"".join(raws) + tail, {"inference-header-content-length": length}


def test_binary_tensor_data_fuzzing_gets_answers_never_5xx(server: Server) -> None:
    statuses: set[int] = set()

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    @given(request=_binary_requests())
    def run(request: tuple[bytes, dict[str, str]]) -> None:
        body, headers = request
        response = httpx.post(
            f"{server.url}/v2/models/credit/infer", content=body, headers=headers, timeout=10
        )
        statuses.add(response.status_code)
        _check(server, response.status_code, f"{headers} {body[:500]!r}")
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}

    run()
    assert 200 in statuses and 400 in statuses
