"""The binary tensor data extension: requests with raw tensor bytes after the JSON object, binary outputs."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from mlsteward.serving import binary, errors, protocol
from tests.unit.serving.test_protocol import NUMERIC, OUTPUTS, SIGNATURE


def request(inputs: list[tuple[dict[str, Any], bytes]], **fields: Any) -> tuple[bytes, bytes]:
    """A body as tritonclient builds it, and its Inference-Header-Content-Length value."""
    header = orjson.dumps({"inputs": [entry for entry, _ in inputs], **fields})
    return header + b"".join(raw for _, raw in inputs), b"%d" % len(header)


def tensor(
    name: str, array: np.ndarray[Any, Any], datatype: str, size: Any = None
) -> tuple[dict[str, Any], bytes]:
    raw = binary.encode(array, datatype)
    parameters = {"binary_data_size": len(raw) if size is None else size}
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "parameters": parameters}, raw


def parse(body: bytes, length: bytes | None, signature: Any = NUMERIC) -> protocol.InferRequest:
    json_part, reader = binary.split_body(body, length)
    return protocol.parse_v2(protocol.load_json(json_part), signature, OUTPUTS, 100, reader)


def test_a_binary_fp32_table_gives_the_same_columns_as_the_same_values_in_json() -> None:
    values = np.array([[1.5, -2.0], [np.nan, 4.25], [5.0, 6.0]], dtype=np.float32)
    from_binary = parse(*request([tensor("t", values, "FP32")]))
    from_json = parse(
        orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "t",
                        "shape": [3, 2],
                        "datatype": "FP32",
                        "data": [[1.5, -2.0], [None, 4.25], [5, 6]],
                    }
                ]
            }
        ),
        None,
    )
    for name in NUMERIC.names:
        assert from_binary.columns[name].dtype == np.float32
        np.testing.assert_array_equal(from_binary.columns[name], from_json.columns[name])
    assert from_binary.matrix is not None and from_binary.matrix.shape == (3, 2)
    assert np.isnan(from_binary.columns["a"][1, 0])  # NaN is a missing value, as null is in JSON


def test_binary_per_feature_inputs_of_every_kind_mix_with_json_inputs() -> None:
    purpose = np.array([["car"], ["héme"]], dtype=object)
    body, length = request(
        [
            tensor("income", np.array([[1.5], [2.5]], dtype=np.float64), "FP64"),
            ({"name": "age_of_loan", "shape": [2], "datatype": "INT64", "data": [3, 4]}, b""),
            tensor("purpose", purpose, "BYTES"),
            tensor("sex", np.array(["F", "M"], dtype=object), "BYTES"),
        ]
    )
    parsed = parse(body, length, SIGNATURE)
    assert parsed.columns["income"].ravel().tolist() == [1.5, 2.5]
    assert parsed.columns["purpose"].ravel().tolist() == ["car", "héme"]
    assert parsed.metadata == {"sex": ["F", "M"]}
    ages = parse(*request([tensor("t", np.array([[1, 0]], dtype=np.uint8), "UINT8")]))
    assert ages.columns["a"].ravel().tolist() == [1.0]
    flags = parse(*request([tensor("t", np.array([[True, False]]), "BOOL")]))
    assert flags.columns["b"].ravel().tolist() == [0.0]


def _ones(
    extra: bytes = b"", header: bytes | None = b"", *, shorter_header: bool = False
) -> tuple[bytes, bytes | None]:
    """One [1, 2] FP32 tensor, changed: bytes appended, another header value, or none."""
    body, length = request([tensor("t", np.ones((1, 2), np.float32), "FP32")])
    if header is None:
        return body[: int(length)], None
    if shorter_header:
        return body, b"%d" % (int(length) - 1)
    return body + extra, header or length


def _raw(datatype: str, raw: bytes, shape: tuple[int, ...] = (1, 2)) -> tuple[bytes, bytes]:
    entry = {
        "name": "t",
        "shape": list(shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw)},
    }
    return request([(entry, raw)])


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (
            lambda: request([tensor("t", np.ones((2, 2), np.float32), "FP32", size=12)]),
            "needs 16 bytes (4 x 4), parameters.binary_data_size is 12",
        ),
        (
            lambda: request([tensor("t", np.ones((2, 2), np.float32), "FP32", size=20)]),
            "only 16 bytes of binary data are left",
        ),
        (
            lambda: request([tensor("t", np.ones((2, 2), np.float32), "FP32", size=-1)]),
            "must be a non-negative integer",
        ),
        (
            lambda: request([tensor("t", np.ones((2, 2), np.float32), "FP32", size=True)]),
            "must be a non-negative integer",
        ),
        (
            lambda: request([tensor("t", np.ones((2, 2), np.float32), "FP32", size="16")]),
            "must be a non-negative integer",
        ),
        (
            lambda: _raw("FP32", np.ones((2, 2)).tobytes(), (2, 2)),
            "needs 16 bytes (4 x 4), parameters.binary_data_size is 32",
        ),
        (lambda: request([tensor("t", np.ones((2, 3), np.float32), "FP32")]), "does not fit the model"),
        (
            lambda: request([tensor("t", np.array([[1.0, np.inf]], np.float32), "FP32")]),
            "infinite or too large",
        ),
        (lambda: request([tensor("t", np.array([[1.0, 1e300]]), "FP64")]), "infinite or too large"),
        (lambda: _raw("BOOL", b"\x01\x02"), "BOOL elements must be the bytes 0 or 1"),
        (
            lambda: request([tensor("t", np.array([[True, False]]), "BOOL")], parameters=[]),
            "'parameters' must be an object",
        ),
        (lambda: _ones(b"\x00"), "1 bytes of binary data that no input claims"),
        (lambda: _ones(header=None), "the request has no binary data"),
        (lambda: _ones(header=b"x1"), "must be a non-negative integer, got 'x1'"),
        (lambda: _ones(header=b"99999"), "but the body has only"),
        (lambda: _ones(header=b"-1"), "must be a non-negative integer"),
        (lambda: _ones(shorter_header=True), "not valid JSON"),
    ],
)
def test_binary_requests_that_do_not_add_up_are_bad_requests_naming_the_problem(
    build: Any, fragment: str
) -> None:
    body, length = build()
    with pytest.raises(errors.BadRequestError) as caught:
        parse(body, length)
    assert fragment in caught.value.message
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (struct.pack("<I", 3) + b"car", "needs 2 BYTES elements, the binary data holds 1"),
        (struct.pack("<I", 3) + b"car" + b"\x01\x00", "truncated 4-byte length prefix"),
        (struct.pack("<I", 9) + b"car", "says 9 bytes, only 3 are left"),
        (struct.pack("<I", 2) + b"\xff\xfe" + struct.pack("<I", 0), "is not valid UTF-8"),
        ((struct.pack("<I", 1) + b"a") * 3, "holds more than 2"),
    ],
)
def test_malformed_bytes_elements_are_refused(raw: bytes, fragment: str) -> None:
    entry = {
        "name": "purpose",
        "shape": [2],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(raw)},
    }
    others = [
        ({"name": "income", "shape": [2], "datatype": "FP32", "data": [1, 2]}, b""),
        ({"name": "age_of_loan", "shape": [2], "datatype": "FP32", "data": [1, 2]}, b""),
    ]
    with pytest.raises(errors.BadRequestError, match="input 'purpose'") as caught:
        parse(*request([*others, (entry, raw)]), SIGNATURE)
    assert fragment in caught.value.message


def test_an_input_with_both_json_data_and_binary_data_is_refused() -> None:
    entry, raw = tensor("t", np.ones((1, 2), np.float32), "FP32")
    entry["data"] = [1, 1]
    with pytest.raises(errors.BadRequestError, match=r"both 'data' and parameters\.binary_data_size"):
        parse(*request([(entry, raw)]))


def test_outputs_come_back_binary_when_asked_per_output_or_by_default() -> None:
    body, length = request(
        [tensor("t", np.ones((2, 2), np.float32), "FP32")],
        outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "label"}],
    )
    assert parse(body, length).binary_outputs == {"probabilities"}
    every = parse(
        *request([tensor("t", np.ones((2, 2), np.float32), "FP32")], parameters={"binary_data_output": True})
    )
    assert every.binary_outputs == set(OUTPUTS)
    but_label = parse(
        *request(
            [tensor("t", np.ones((2, 2), np.float32), "FP32")],
            parameters={"binary_data_output": True},
            outputs=[{"name": "label", "parameters": {"binary_data": False}}, {"name": "probabilities"}],
        )
    )
    assert but_label.binary_outputs == {"probabilities"}
    for parameters in ({"binary_data_output": 1}, {"binary_data_output": "yes"}):
        with pytest.raises(
            errors.BadRequestError, match=r"parameters\.binary_data_output must be true or false"
        ):
            parse(*request([tensor("t", np.ones((2, 2), np.float32), "FP32")], parameters=parameters))
    with pytest.raises(
        errors.BadRequestError, match=r"outputs\[0\].parameters.binary_data must be true or false"
    ):
        parse(
            *request(
                [tensor("t", np.ones((2, 2), np.float32), "FP32")],
                outputs=[{"name": "label", "parameters": {"binary_data": None}}],
            )
        )


def test_binary_outputs_follow_the_json_object_with_their_sizes_in_it() -> None:
    outputs: dict[str, np.ndarray[Any, Any]] = {
        "label": np.array([1, 0], dtype=np.int64),
        "probabilities": np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32),
        "reason_codes": np.array([["income", "é"], ["age", "x"]], dtype=object),
    }
    body, header_length = protocol.encode_v2(
        model_name="m",
        version="1",
        rid="r",
        route="champion",
        outputs=outputs,
        datatypes={"label": "INT64", "probabilities": "FP32", "reason_codes": "BYTES"},
        selected=("label", "probabilities", "reason_codes"),
        binary_outputs=frozenset({"probabilities", "reason_codes"}),
    )
    assert header_length is not None
    document = orjson.loads(body[:header_length])
    label, probabilities, codes = document["outputs"]
    assert label["data"] == [1, 0] and "parameters" not in label
    assert "data" not in probabilities and probabilities["parameters"] == {"binary_data_size": 16}
    rest = body[header_length:]
    np.testing.assert_array_equal(np.frombuffer(rest[:16], "<f4").reshape(2, 2), outputs["probabilities"])
    assert codes["parameters"]["binary_data_size"] == len(rest) - 16
    assert binary.Reader(memoryview(rest[16:])).take("codes", len(rest) - 16, [2, 2], "BYTES") == [
        "income",
        "é",
        "age",
        "x",
    ]
