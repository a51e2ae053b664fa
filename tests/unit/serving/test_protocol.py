"""The Open Inference Protocol parser and encoder, without HTTP."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from mlsteward.serving import errors, protocol, signatures

SIGNATURE = signatures.from_schema(
    {
        "task": "classification",
        "features": [
            {"name": "income", "kind": "numeric"},
            {"name": "age_of_loan", "kind": "numeric"},
            {"name": "purpose", "kind": "categorical"},
        ],
        "classes": ["0", "1"],
        "positive_class": "1",
        "sensitive": ["sex"],
    }
)
NUMERIC = signatures.from_schema(
    {"task": "regression", "features": [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}]}
)
OUTPUTS = ("label", "probabilities")


def parse(document: dict[str, Any], signature: signatures.Signature = SIGNATURE, max_rows: int = 100) -> Any:
    return protocol.parse_v2(document, signature, OUTPUTS, max_rows)


def per_feature(**changes: Any) -> dict[str, Any]:
    inputs = [
        {"name": "income", "shape": [2, 1], "datatype": "FP32", "data": [[1.5], [None]]},
        {"name": "age_of_loan", "shape": [2], "datatype": "INT64", "data": [3, 4]},
        {"name": "purpose", "shape": [2, 1], "datatype": "BYTES", "data": ["car", None]},
    ]
    return {"inputs": inputs, **changes}


def test_per_feature_tensors_become_float32_and_string_columns_in_feature_order() -> None:
    request = parse(per_feature(id="r1"))
    assert request.id == "r1" and request.rows == 2
    assert list(request.columns) == ["income", "age_of_loan", "purpose"]
    income = request.columns["income"]
    assert income.dtype == np.float32 and income.shape == (2, 1) and np.isnan(income[1, 0])
    assert request.columns["purpose"].tolist() == [["car"], [""]]


def test_one_numeric_table_tensor_is_split_into_contiguous_feature_columns() -> None:
    request = parse(
        {"inputs": [{"name": "t", "shape": [3, 2], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]}]}, NUMERIC
    )
    assert request.columns["a"].ravel().tolist() == [1, 3, 5]
    assert request.columns["b"].ravel().tolist() == [2, 4, 6]
    assert all(column.flags.c_contiguous and column.shape == (3, 1) for column in request.columns.values())


def test_a_bytes_table_carries_numbers_and_numeric_strings_for_numeric_features() -> None:
    data = [[1.5, "2", "car"], [None, 3, "home"]]
    request = parse({"inputs": [{"name": "t", "shape": [2, 3], "datatype": "BYTES", "data": data}]})
    assert request.columns["age_of_loan"].ravel().tolist() == [2.0, 3.0]
    assert request.columns["purpose"].ravel().tolist() == ["car", "home"]


def test_sensitive_inputs_become_metadata_and_never_columns() -> None:
    document = per_feature()
    document["inputs"].append({"name": "sex", "shape": [2], "datatype": "BYTES", "data": ["F", "M"]})
    request = parse(document)
    assert "sex" not in request.columns and request.metadata == {"sex": ["F", "M"]}


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["inputs"].pop(), "missing feature(s): purpose"),
        (lambda d: d["inputs"].append(dict(d["inputs"][0])), "appears more than once"),
        (lambda d: d["inputs"][0].update(name="wage"), "unknown input name 'wage'"),
        (lambda d: d["inputs"][0].update(datatype="FP8"), "unknown datatype"),
        (lambda d: d["inputs"][0].update(shape=[2, True]), "shape must be"),
        (lambda d: d["inputs"][0].update(shape=[-1, 1]), "shape must be"),
        (lambda d: d["inputs"][0].update(data=[[1.0], [1.0, 2.0]]), "ragged"),
        (lambda d: d["inputs"][0].update(data=[1.0]), "needs 2 values, data has 1"),
        (lambda d: d["inputs"][0].update(data=["1", "2"]), "holds strings"),
        (lambda d: d["inputs"][0].update(data=[3.5e38, 3.5e38]), "too large for a 32-bit float"),
        (lambda d: d["inputs"][0].update(data=[None, 3.5e38]), "too large for a 32-bit float"),
        (lambda d: d["inputs"][0].update(data=[{"a": 1}, 2]), "expected numbers or null"),
        (lambda d: d["inputs"][1].update(data=[1.5, 2]), "non-integer"),
        (lambda d: d["inputs"][1].update(datatype="UINT8", data=[300, 2]), "outside the range of UINT8"),
        (lambda d: d["inputs"][1].update(data=[10**30, 1]), "outside the range"),
        (lambda d: d["inputs"][2].update(data=[1, "car"]), "expected strings or null"),
        (lambda d: d["inputs"][2].update(datatype="FP32"), "categorical feature: send BYTES"),
        (lambda d: d["inputs"][0].update(data="1.5"), "'data' must be a list"),
        (lambda d: d.update(outputs=[{"name": "margin"}]), "unknown output 'margin'"),
        (lambda d: d.update(parameters=[]), "'parameters' must be an object"),
        (lambda d: d.update(id=["x"]), "'id' must be a string"),
        (lambda d: d.update(inputs={}), "'inputs' must be a non-empty list"),
    ],
)
def test_requests_that_do_not_fit_raise_bad_request_naming_the_problem(mutate: Any, fragment: str) -> None:
    document = per_feature()
    mutate(document)
    with pytest.raises(errors.BadRequestError) as caught:
        parse(document)
    assert fragment in caught.value.message
    assert caught.value.status == 400


def test_too_many_rows_is_payload_too_large_and_zero_rows_is_a_bad_request() -> None:
    with pytest.raises(errors.PayloadTooLargeError, match="at most 1"):
        parse(per_feature(), max_rows=1)
    empty = {"inputs": [{"name": "t", "shape": [0, 2], "datatype": "FP32", "data": []}]}
    with pytest.raises(errors.BadRequestError, match="no rows"):
        parse(empty, NUMERIC)


def test_deeply_nested_data_is_refused_without_recursion() -> None:
    data: Any = "car"
    for _ in range(200):
        data = [data]
    document = per_feature()
    document["inputs"][2]["data"] = data
    with pytest.raises(errors.BadRequestError, match="nested more than 32 levels"):
        parse(document)


def test_invalid_json_and_non_objects_are_bad_requests() -> None:
    with pytest.raises(errors.BadRequestError, match="not valid JSON"):
        protocol.load_json(b'{"inputs": [1e999]}')
    with pytest.raises(errors.BadRequestError, match="must be a JSON object"):
        protocol.load_json(b'"text"')


def test_v1_instances_as_objects_and_lists_give_the_same_columns() -> None:
    as_objects = protocol.parse_v1(
        {"instances": [{"income": 1, "age_of_loan": 2, "purpose": "car", "sex": "F"}]}, SIGNATURE, 10
    )
    as_lists = protocol.parse_v1({"instances": [[1, 2, "car"]]}, SIGNATURE, 10)
    for name in SIGNATURE.names:
        assert as_objects.columns[name].tolist() == as_lists.columns[name].tolist()
    assert as_objects.metadata == {"sex": ["F"]}
    with pytest.raises(errors.BadRequestError, match="missing feature"):
        protocol.parse_v1({"instances": [{"income": 1}]}, SIGNATURE, 10)
    with pytest.raises(errors.BadRequestError, match="has 2 values"):
        protocol.parse_v1({"instances": [[1, 2]]}, SIGNATURE, 10)


def test_responses_name_the_model_version_route_and_keep_float32_values_short() -> None:
    outputs = {
        "label": np.array([1, 0]),
        "probabilities": np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32),
    }
    encoded, header_length = protocol.encode_v2(
        model_name="credit",
        version="3",
        rid="r",
        route="challenger",
        outputs=outputs,
        datatypes={"label": "INT64", "probabilities": "FP32"},
        selected=("probabilities",),
    )
    assert header_length is None  # no binary outputs asked for: the body is the JSON object
    document = orjson.loads(encoded)
    assert document == {
        "model_name": "credit",
        "model_version": "3",
        "id": "r",
        "parameters": {"route": "challenger"},
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [2, 2], "data": [0.2, 0.8, 0.9, 0.1]}
        ],
    }
    assert orjson.loads(protocol.encode_v1("3", "champion", np.array(["a", "b"], dtype=object)))[
        "predictions"
    ] == ["a", "b"]
