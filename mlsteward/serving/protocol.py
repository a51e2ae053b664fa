"""Open Inference Protocol (KServe v2) and KServe v1 messages: parse, validate, encode. Pure: no HTTP, no I/O.

The grammar, from the protocol's REST specification::

    $inference_request = { "id" : $string #optional, "parameters" : $parameters #optional,
                           "inputs" : [ $request_input, ... ],
                           "outputs" : [ $request_output, ... ] #optional }
    $request_input     = { "name" : $string, "shape" : [ $number, ... ], "datatype" : $string,
                           "parameters" : $parameters #optional, "data" : $tensor_data }
    $request_output    = { "name" : $string, "parameters" : $parameters #optional }
    $inference_response = { "model_name" : $string, "model_version" : $string #optional, "id" : $string,
                            "parameters" : $parameters #optional, "outputs" : [ $response_output, ... ] }
    $response_output   = { "name" : $string, "shape" : [ $number, ... ], "datatype" : $string,
                           "data" : $tensor_data }

    KServe v1: { "instances": [ <row>, ... ] } -> { "predictions": [ <prediction>, ... ] }

Inputs come either as one ``[N, F]`` tensor in the model's feature order (numeric datatypes for
numeric-only models, ``BYTES`` for models with categoricals) or as one ``[N]``/``[N, 1]`` tensor
per feature (``BYTES`` for categoricals). Inputs named after the model's sensitive columns are
accepted as metadata for the monitor and never reach the model. Numeric ``null`` means missing
(the trained pipeline imputes it); categorical ``null`` becomes ``""`` (the trainer's missing
category). Every problem raises :class:`~mlsteward.serving.errors.BadRequestError` naming the input.
Tensor data may also come as raw bytes after the JSON object (the binary tensor data extension,
:mod:`mlsteward.serving.binary`); it is then checked exactly as JSON data is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import orjson

from mlsteward.serving import binary, errors, signatures, tensors

NUMERIC_DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}
)
DATATYPES = NUMERIC_DATATYPES | {"BYTES"}
REASON_CODES = "reason_codes"
_FloatArray = np.ndarray[Any, np.dtype[np.float32]]
_AnyArray = np.ndarray[Any, Any]


@dataclasses.dataclass(slots=True)
class InferRequest:
    """A validated request: one ``[rows, 1]`` array per feature, in the model's feature order."""

    id: str | None
    rows: int
    columns: dict[str, _AnyArray]
    metadata: dict[str, list[Any]]
    outputs: tuple[str, ...] | None
    reason_codes: bool
    block: _AnyArray | None = None
    """The numeric features as one feature-major ``[F, rows, 1]`` array (``columns`` are views of
    it), when the request was one numeric ``[N, F]`` tensor: the monitor feed copies it in one call."""
    matrix: _FloatArray | None = None
    """The same features row-major, ``[rows, F]`` float32 (a runtime with one ``[N, F]`` input takes it)."""
    binary_outputs: frozenset[str] = frozenset()
    """Outputs to return as binary data (the binary tensor data extension)."""


def load_json(body: bytes) -> dict[str, Any]:
    if not body:
        raise errors.BadRequestError("request body is empty: expected a JSON object")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise errors.BadRequestError(f"request body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise errors.BadRequestError(f"request body must be a JSON object, got {tensors.json_type(document)}")
    return document


def request_id(document: dict[str, Any]) -> str | None:
    value = document.get("id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.BadRequestError(f"'id' must be a string, got {tensors.json_type(value)}")
    if len(value) > 256:
        raise errors.BadRequestError(f"'id' is {len(value)} characters long: at most 256 allowed")
    return value


def parse_v2(
    document: dict[str, Any],
    signature: signatures.Signature,
    output_names: tuple[str, ...],
    max_rows: int,
    binary_data: binary.Reader | None = None,
) -> InferRequest:
    """Validate a v2 inference request against the model; raise BadRequestError/PayloadTooLargeError.

    ``binary_data`` holds the bytes after the JSON object when the request used the binary tensor
    data extension (:func:`mlsteward.serving.binary.split_body`).
    """
    rid = request_id(document)
    parameters = _parameters(document.get("parameters"), "'parameters'")
    reason_codes = _flag(parameters, REASON_CODES, "parameters")
    binary_by_default = _flag(parameters, binary.WANTED_BY_DEFAULT, "parameters")
    outputs, binary_flags = _requested_outputs(document.get("outputs"), output_names)
    if outputs is not None and REASON_CODES in outputs:
        reason_codes = True
    binary_outputs = {name for name, wanted in binary_flags.items() if wanted}
    if binary_by_default:  # every output, unless its own binary_data says false
        selected = outputs or (*output_names, *((REASON_CODES,) if reason_codes else ()))
        binary_outputs |= {name for name in selected if binary_flags.get(name, True)}
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise errors.BadRequestError("'inputs' must be a non-empty list of input tensors")
    received = [_tensor(entry, position, binary_data) for position, entry in enumerate(inputs)]
    if binary_data is not None:
        binary_data.finish()
    known = signature.index
    if len(received) == 1 and received[0].name not in known and received[0].name not in signature.sensitive:
        rows, columns, block, matrix = _tabular(received[0], signature, max_rows)
        metadata: dict[str, list[Any]] = {}
    else:
        rows, columns, metadata = _per_feature(received, signature, max_rows)
        block = matrix = None
    return InferRequest(
        rid, rows, columns, metadata, outputs, reason_codes, block, matrix, frozenset(binary_outputs)
    )


def parse_v1(document: dict[str, Any], signature: signatures.Signature, max_rows: int) -> InferRequest:
    """Validate a KServe v1 ``{"instances": [...]}`` request: rows as lists (feature order) or objects."""
    instances = document.get("instances")
    if not isinstance(instances, list) or not instances:
        raise errors.BadRequestError("'instances' must be a non-empty list of rows")
    rows = len(instances)
    _check_rows(rows, max_rows)
    names = signature.names
    if all(isinstance(row, list) for row in instances):
        for position, row in enumerate(instances):
            if len(row) != len(names):
                raise errors.BadRequestError(
                    f"instances[{position}] has {len(row)} values; the model takes {len(names)} features: "
                    + ", ".join(names)
                )
        table = _Tensor("instances", [rows, len(names)], "BYTES", instances)
        if signature.numeric_only:
            table = _Tensor("instances", [rows, len(names)], "FP64", instances)
        _, columns, block, matrix = _tabular(table, signature, max_rows)
        return InferRequest(None, rows, columns, {}, None, False, block, matrix)
    if not all(isinstance(row, dict) for row in instances):
        raise errors.BadRequestError(
            "'instances' must hold rows that are all lists (feature order) or all objects"
        )
    allowed = set(names) | set(signature.sensitive)
    for position, row in enumerate(instances):
        for key in row:
            if key not in allowed:
                raise errors.BadRequestError(
                    f"instances[{position}] has unknown feature {key!r}; the model's features are: "
                    + ", ".join(names)
                )
        missing = [name for name in names if name not in row]
        if missing:
            raise errors.BadRequestError(
                f"instances[{position}] is missing feature(s): " + ", ".join(missing)
            )
    columns = {}
    for feature in signature.features:
        values = [row[feature.name] for row in instances]
        where = f"feature {feature.name!r}"
        if feature.kind == "numeric":
            columns[feature.name] = tensors.numbers(values, "FP64", where, rows).reshape(rows, 1)
        else:
            columns[feature.name] = tensors.strings(values, where)
    metadata = {
        name: [row.get(name) for row in instances]
        for name in signature.sensitive
        if any(name in row for row in instances)
    }
    return InferRequest(None, rows, columns, metadata, None, False)


def encode_v2(
    *,
    model_name: str,
    version: str,
    rid: str,
    route: str,
    outputs: dict[str, _AnyArray],
    datatypes: dict[str, str],
    selected: tuple[str, ...],
    binary_outputs: frozenset[str] = frozenset(),
) -> tuple[bytes, int | None]:
    """The response body, and the length of its JSON object when binary outputs follow it."""
    encoded: list[dict[str, Any]] = []
    raw: list[bytes] = []
    for name in selected:
        array = outputs[name]
        entry: dict[str, Any] = {"name": name, "datatype": datatypes[name], "shape": list(array.shape)}
        if name in binary_outputs:
            raw.append(binary.encode(array, datatypes[name]))
            entry["parameters"] = {binary.SIZE: len(raw[-1])}
        elif array.dtype.kind in "OUS":
            entry["data"] = array.ravel().tolist()
        else:
            entry["data"] = np.ascontiguousarray(array).ravel()
        encoded.append(entry)
    document = {
        "model_name": model_name,
        "model_version": version,
        "id": rid,
        "parameters": {"route": route},
        "outputs": encoded,
    }
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not raw:
        return header, None
    return b"".join((header, *raw)), len(header)


def encode_v1(version: str, route: str, predictions: _AnyArray) -> bytes:
    flat = predictions.reshape(len(predictions), -1)[:, 0] if predictions.ndim > 1 else predictions
    data: Any = flat.tolist() if flat.dtype.kind in "OUS" else np.ascontiguousarray(flat)
    return orjson.dumps(
        {"predictions": data, "model_version": version, "route": route}, option=orjson.OPT_SERIALIZE_NUMPY
    )


def encode_error(message: str) -> bytes:
    return orjson.dumps({"error": message})


# --- internals -------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Tensor:
    name: str
    shape: list[int]
    datatype: str
    data: Any


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.BadRequestError(f"{where} must be an object, got {tensors.json_type(value)}")
    return value


def _flag(parameters: dict[str, Any], name: str, where: str) -> bool:
    value = parameters.get(name, False)
    if not isinstance(value, bool):
        raise errors.BadRequestError(f"{where}.{name} must be true or false, got {tensors.json_type(value)}")
    return value


def _requested_outputs(
    value: Any, output_names: tuple[str, ...]
) -> tuple[tuple[str, ...] | None, dict[str, bool]]:
    """The selected outputs (None: all) and, per output that says, whether it wants binary data."""
    if value is None:
        return None, {}
    if not isinstance(value, list):
        raise errors.BadRequestError(
            f"'outputs' must be a list of {{\"name\": ...}} objects, got {tensors.json_type(value)}"
        )
    names: list[str] = []
    binary_flags: dict[str, bool] = {}
    allowed = (*output_names, REASON_CODES)
    for position, entry in enumerate(value):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise errors.BadRequestError(f"outputs[{position}] must be an object with a string 'name'")
        parameters = _parameters(entry.get("parameters"), f"outputs[{position}].parameters")
        name = entry["name"]
        if name not in allowed:
            raise errors.BadRequestError(
                f"unknown output {name!r}; the model's outputs are: " + ", ".join(allowed)
            )
        if binary.WANTED in parameters:
            binary_flags[name] = _flag(parameters, binary.WANTED, f"outputs[{position}].parameters")
        if name not in names:
            names.append(name)
    return tuple(names), binary_flags


def _tensor(entry: Any, position: int, binary_data: binary.Reader | None) -> _Tensor:
    if not isinstance(entry, dict):
        raise errors.BadRequestError(f"inputs[{position}] must be an object, got {tensors.json_type(entry)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise errors.BadRequestError(f"inputs[{position}].name must be a non-empty string")
    where = f"input {name!r}"
    datatype = entry.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise errors.BadRequestError(
            f"{where}: unknown datatype {datatype!r}; expected one of " + ", ".join(sorted(DATATYPES))
        )
    shape = entry.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(type(d) is int and 0 <= d < 2**31 for d in shape)  # bools are not dimensions
    ):
        raise errors.BadRequestError(
            f"{where}: shape must be a non-empty list of non-negative integers, got {shape!r}"
        )
    parameters = _parameters(entry.get("parameters"), f"{where} parameters")
    if binary.SIZE in parameters:
        if "data" in entry:
            raise errors.BadRequestError(
                f"{where}: has both 'data' and parameters.{binary.SIZE}; send the data one way"
            )
        if binary_data is None:
            raise errors.BadRequestError(
                f"{where}: parameters.{binary.SIZE} is set but the request has no binary data "
                "(the Inference-Header-Content-Length header is missing)"
            )
        values = binary_data.take(where, parameters[binary.SIZE], shape, datatype)
        return _Tensor(name, shape, datatype, values)
    if "data" not in entry:
        raise errors.BadRequestError(f"{where}: 'data' is missing")
    data = entry["data"]
    if not isinstance(data, list):
        raise errors.BadRequestError(
            f"{where}: 'data' must be a list (flat or nested, row-major), got {tensors.json_type(data)}"
        )
    return _Tensor(name, shape, datatype, data)


def _check_rows(rows: int, max_rows: int) -> None:
    if rows < 1:
        raise errors.BadRequestError("the request has no rows: the first dimension must be at least 1")
    if rows > max_rows:
        raise errors.PayloadTooLargeError(f"the request has {rows} rows: at most {max_rows} are allowed")


def _size(shape: list[int]) -> int:
    size = 1
    for dimension in shape:
        size *= dimension
    return size


def _tabular(
    tensor: _Tensor, signature: signatures.Signature, max_rows: int
) -> tuple[int, dict[str, _AnyArray], _AnyArray | None, _FloatArray | None]:
    names = signature.names
    where = f"input {tensor.name!r}"
    if len(tensor.shape) != 2 or tensor.shape[1] != len(names):
        raise errors.BadRequestError(
            f"{where}: shape {tensor.shape} does not fit the model: send one [N, {len(names)}] tensor with "
            f"the features in this order ({', '.join(names)}) or one tensor per feature named after it"
        )
    rows = tensor.shape[0]
    _check_rows(rows, max_rows)
    if tensor.datatype != "BYTES":
        if not signature.numeric_only:
            raise errors.BadRequestError(
                f"{where}: datatype {tensor.datatype} cannot carry the categorical feature(s) "
                + ", ".join(signature.categorical_names)
                + "; send the [N, F] tensor as BYTES or one tensor per feature"
            )
        values = tensors.numbers(tensor.data, tensor.datatype, where, _size(tensor.shape))
        matrix = values.reshape(rows, len(names))
        # [F, N, 1] contiguous: iterating it yields each feature's [N, 1] column as a view, no copies.
        by_feature = np.ascontiguousarray(matrix.T).reshape(len(names), rows, 1)
        return rows, dict(zip(names, by_feature, strict=True)), by_feature, matrix
    flat = tensors.flatten(tensor.data, where)
    if len(flat) != rows * len(names):
        raise errors.BadRequestError(
            f"{where}: shape {tensor.shape} needs {rows * len(names)} values, data has {len(flat)}"
        )
    columns: dict[str, _AnyArray] = {}
    for j, feature in enumerate(signature.features):
        values_j = flat[j :: len(names)]
        column_where = f"{where} column {j} ({feature.name!r})"
        if feature.kind == "numeric":
            columns[feature.name] = tensors.numbers(values_j, "BYTES", column_where).reshape(rows, 1)
        else:
            columns[feature.name] = tensors.strings(values_j, column_where)
    return rows, columns, None, None


def _per_feature(
    received: list[_Tensor], signature: signatures.Signature, max_rows: int
) -> tuple[int, dict[str, _AnyArray], dict[str, list[Any]]]:
    seen: dict[str, _Tensor] = {}
    for tensor in received:
        if tensor.name in seen:
            raise errors.BadRequestError(f"input {tensor.name!r} appears more than once")
        if tensor.name not in signature.index and tensor.name not in signature.sensitive:
            raise errors.BadRequestError(
                f"unknown input name {tensor.name!r}; the model's inputs are: " + ", ".join(signature.names)
            )
        seen[tensor.name] = tensor
    missing = [name for name in signature.names if name not in seen]
    if missing:
        raise errors.BadRequestError("missing feature(s): " + ", ".join(missing))
    rows = -1
    for tensor in seen.values():
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise errors.BadRequestError(f"input {tensor.name!r}: shape {tensor.shape} must be [N] or [N, 1]")
        if rows == -1:
            rows = tensor.shape[0]
            _check_rows(rows, max_rows)
        elif tensor.shape[0] != rows:
            raise errors.BadRequestError(
                f"input {tensor.name!r} has {tensor.shape[0]} rows but the other inputs have {rows}"
            )
    columns: dict[str, _AnyArray] = {}
    for feature in signature.features:
        tensor = seen[feature.name]
        where = f"input {feature.name!r}"
        if feature.kind == "numeric":
            if tensor.datatype == "BYTES":
                raise errors.BadRequestError(
                    f"{where} is a numeric feature: send FP32, FP64 or an integer datatype, not BYTES"
                )
            columns[feature.name] = tensors.numbers(tensor.data, tensor.datatype, where, rows).reshape(
                rows, 1
            )
        else:
            if tensor.datatype != "BYTES":
                raise errors.BadRequestError(
                    f"{where} is a categorical feature: send BYTES, not {tensor.datatype}"
                )
            flat = tensors.flatten(tensor.data, where)
            if len(flat) != rows:
                raise errors.BadRequestError(
                    f"{where}: shape {tensor.shape} needs {rows} values, data has {len(flat)}"
                )
            columns[feature.name] = tensors.strings(flat, where)
    metadata = {}
    for name in signature.sensitive:
        if name in seen:
            flat = tensors.flatten(seen[name].data, f"input {name!r}")
            if len(flat) != rows:
                raise errors.BadRequestError(f"input {name!r}: needs {rows} values, data has {len(flat)}")
            metadata[name] = [v if v is None or isinstance(v, str | int | float) else str(v) for v in flat]
    return rows, columns, metadata
