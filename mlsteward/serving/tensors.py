"""Tensor data of the Open Inference Protocol to numpy columns, checked value by value. Pure: no I/O.

``data`` arrives as JSON lists, flat or nested row-major, or as a flat numpy array decoded from
binary data (:mod:`mlsteward.serving.binary`). Numbers go through numpy's fast path when the list
is homogeneous and through a checked loop otherwise (``null`` for missing values, stray strings,
booleans, huge integers); strings are checked one by one. Every refusal raises
:class:`~mlsteward.serving.errors.BadRequestError` saying where (``where``) and what.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlsteward.serving import errors

_INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
}
_FloatArray = np.ndarray[Any, np.dtype[np.float32]]
_AnyArray = np.ndarray[Any, Any]


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def flatten(data: Any, where: str) -> list[Any]:
    """Row-major flattening of nested lists without recursion (JSON nesting can be deep)."""
    if isinstance(data, np.ndarray):  # binary data: already flat
        return list(data.tolist())
    if not any(isinstance(item, list) for item in data):
        return list(data)
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) > 32:
                    raise errors.BadRequestError(f"{where}: data is nested more than 32 levels deep")
                stack.append(iter(item))
                break
            if isinstance(item, dict):
                raise errors.BadRequestError(f"{where}: data holds an object; expected numbers or strings")
            flat.append(item)
        else:
            stack.pop()
    return flat


def numbers(data: Any, datatype: str, where: str, expected: int | None = None) -> _FloatArray:
    """A flat float32 array; null becomes NaN (missing). Rejects strings, booleans (unless BOOL), overflow."""
    try:
        array = data if isinstance(data, np.ndarray) else np.array(data)
    except (ValueError, TypeError, RecursionError):
        raise errors.BadRequestError(
            f"{where}: data is ragged: nested lists must all have the same length"
        ) from None
    kind = array.dtype.kind
    if kind == "b" and datatype not in ("BOOL", "BYTES"):
        raise errors.BadRequestError(f"{where}: datatype {datatype} but the data holds booleans")
    if kind in "US":
        if datatype != "BYTES":
            raise errors.BadRequestError(f"{where}: datatype {datatype} but the data holds strings")
        array = np.array(_objects_to_floats(array.ravel().tolist(), datatype, where, parse_strings=True))
    elif kind == "O":
        array = np.array(
            _objects_to_floats(flatten(data, where), datatype, where, parse_strings=datatype == "BYTES")
        )
    elif kind not in "iufb":
        raise errors.BadRequestError(f"{where}: data holds values that are not numbers")
    flat = array.reshape(-1)
    if expected is not None and flat.size != expected:
        raise errors.BadRequestError(f"{where}: the shape needs {expected} values, data has {flat.size}")
    if datatype in _INTEGER_RANGES and flat.size:
        finite = flat[~np.isnan(flat)] if flat.dtype.kind == "f" else flat
        if finite.size:
            if finite.dtype.kind == "f" and not np.array_equal(finite, np.floor(finite)):
                raise errors.BadRequestError(
                    f"{where}: datatype {datatype} but the data holds non-integer numbers"
                )
            low, high = _INTEGER_RANGES[datatype]
            if finite.min() < low or finite.max() > high:
                raise errors.BadRequestError(f"{where}: a value is outside the range of {datatype}")
    if flat.dtype.kind == "f" and flat.dtype.itemsize > 4:
        with np.errstate(over="ignore"):  # overflow is checked below, with a message
            result: _FloatArray = flat.astype(np.float32)
    else:  # nothing to overflow, and np.errstate costs more than the cast of a small array
        result = flat.astype(np.float32)
    if flat.dtype.kind == "f" and np.isinf(result).any():
        # Checked after the cast: NaN (missing) is allowed, and a max() over data holding NaN would
        # be NaN and hide an overflowing neighbour.
        raise errors.BadRequestError(
            f"{where}: a value is infinite or too large for a 32-bit float (the model's input type)"
        )
    return result


def _objects_to_floats(values: list[Any], datatype: str, where: str, *, parse_strings: bool) -> list[float]:
    converted: list[float] = []
    for value in values:
        if value is None:
            converted.append(float("nan"))
        elif isinstance(value, bool):
            if datatype not in ("BOOL", "BYTES"):
                raise errors.BadRequestError(f"{where}: datatype {datatype} but the data holds booleans")
            converted.append(float(value))
        elif isinstance(value, int | float):
            try:
                converted.append(float(value))
            except OverflowError:
                raise errors.BadRequestError(f"{where}: the number {value} is too large") from None
        elif isinstance(value, str) and parse_strings:
            try:
                number = float(value)
            except ValueError:
                raise errors.BadRequestError(f"{where}: {value[:64]!r} is not a number") from None
            if math.isnan(number):  # NaN spelled as a string is not a missing value
                raise errors.BadRequestError(
                    f"{where}: {value[:64]!r} is not a finite number; send null for missing"
                )
            converted.append(number)
        else:
            raise errors.BadRequestError(f"{where}: expected numbers or null, got {json_type(value)}")
    return converted


def strings(values: list[Any], where: str) -> _AnyArray:
    column = np.empty((len(values), 1), dtype=object)
    for position, value in enumerate(values):
        if value is None:
            column[position, 0] = ""
        elif isinstance(value, str):
            column[position, 0] = value
        else:
            raise errors.BadRequestError(
                f"{where} is categorical: expected strings or null, got {json_type(value)}"
            )
    return column
