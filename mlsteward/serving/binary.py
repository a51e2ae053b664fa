"""The Open Inference Protocol's binary tensor data extension (as Triton and ``tritonclient`` use it). Pure.

A request may carry tensor data as raw bytes after its JSON object: the HTTP header
``Inference-Header-Content-Length`` gives the JSON object's length in bytes, and each input sent
this way has ``"parameters": {"binary_data_size": <bytes>}`` instead of ``data``. The inputs'
bytes follow one another in the order of ``inputs``, little-endian, row-major, without padding;
``BOOL`` is one byte (0 or 1) per element and ``BYTES`` a 4-byte little-endian length followed by
the UTF-8 text per element. A response returns an output the same way when the request asks for
it (``outputs[].parameters.binary_data`` or the request's ``parameters.binary_data_output``).

The binary path is exactly as strict as the JSON one: each input's size must be its shape times
its datatype's width, the sizes must add up to the bytes present, BOOL bytes must be 0 or 1 and
BYTES elements valid UTF-8; every refusal is a
:class:`~mlsteward.serving.errors.BadRequestError` naming the input. The decoded arrays then go
through the same value checks as JSON data (:func:`mlsteward.serving.tensors.numbers`): a float
NaN means a missing value, as ``null`` does in JSON, and infinities are refused.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from mlsteward.serving import errors

HEADER = b"inference-header-content-length"
SIZE = "binary_data_size"
WANTED = "binary_data"
WANTED_BY_DEFAULT = "binary_data_output"
_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_LENGTH = struct.Struct("<I")
_AnyArray = np.ndarray[Any, Any]


def split_body(body: bytes, header_length: bytes | None) -> tuple[bytes, Reader | None]:
    """The JSON object and a reader over the binary data after it (None without the header)."""
    if header_length is None:
        return body, None
    text = header_length.strip()
    if not text.isdigit():
        raise errors.BadRequestError(
            "the Inference-Header-Content-Length header must be a non-negative integer, "
            f"got {text[:32].decode('latin-1')!r}"
        )
    length = int(text)
    if length > len(body):
        raise errors.BadRequestError(
            f"the Inference-Header-Content-Length header says the JSON object is {length} bytes, "
            f"but the body has only {len(body)}"
        )
    return body[:length], Reader(memoryview(body)[length:])


class Reader:
    """Hands each binary input its bytes, in order, and checks that they add up.

    Usage::

        json_part, reader = split_body(body, headers.get(HEADER))
        values = reader.take("input 'x'", size, shape=[32, 20], datatype="FP32")  # an ndarray
        reader.finish()  # every byte was claimed by an input
    """

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._offset = 0

    def take(self, where: str, size: Any, shape: list[int], datatype: str) -> _AnyArray | list[str]:
        """The input's elements: a flat array for numeric datatypes, a list of strings for BYTES."""
        if type(size) is not int or size < 0:  # bools are not sizes
            raise errors.BadRequestError(
                f"{where}: parameters.{SIZE} must be a non-negative integer, got {size!r}"[:300]
            )
        left = len(self._data) - self._offset
        if size > left:
            raise errors.BadRequestError(
                f"{where}: parameters.{SIZE} is {size} but only {left} bytes of binary data are left "
                "after the JSON object and the inputs before it"
            )
        chunk = self._data[self._offset : self._offset + size]
        self._offset += size
        count = 1
        for dimension in shape:
            count *= dimension
        if datatype == "BYTES":
            return _strings(chunk, count, where)
        dtype = _DTYPES[datatype]
        if size != count * dtype.itemsize:
            raise errors.BadRequestError(
                f"{where}: shape {shape} of {datatype} needs {count * dtype.itemsize} bytes "
                f"({count} x {dtype.itemsize}), parameters.{SIZE} is {size}"
            )
        if datatype == "BOOL":
            raw = np.frombuffer(chunk, np.uint8)
            if raw.size and int(raw.max()) > 1:
                raise errors.BadRequestError(f"{where}: BOOL elements must be the bytes 0 or 1")
        return np.frombuffer(chunk, dtype)

    def finish(self) -> None:
        left = len(self._data) - self._offset
        if left:
            raise errors.BadRequestError(
                f"the body has {left} bytes of binary data that no input claims: the inputs' "
                f"parameters.{SIZE} add up to {self._offset} bytes after the JSON object"
            )


def _strings(chunk: memoryview, count: int, where: str) -> list[str]:
    values: list[str] = []
    offset, end = 0, len(chunk)
    while offset < end:
        if end - offset < 4:
            raise errors.BadRequestError(
                f"{where}: BYTES element {len(values)} has a truncated 4-byte length prefix"
            )
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if length > end - offset:
            raise errors.BadRequestError(
                f"{where}: BYTES element {len(values)} says {length} bytes, only {end - offset} are left"
            )
        try:
            values.append(str(chunk[offset : offset + length], "utf-8"))
        except UnicodeDecodeError:
            raise errors.BadRequestError(f"{where}: BYTES element {len(values)} is not valid UTF-8") from None
        offset += length
        if len(values) > count:
            break
    if len(values) != count:
        raise errors.BadRequestError(
            f"{where}: the shape needs {count} BYTES elements, the binary data holds "
            + (f"more than {count}" if len(values) > count else str(len(values)))
        )
    return values


def encode(array: _AnyArray, datatype: str) -> bytes:
    """An output's binary form: raw little-endian elements, or length-prefixed UTF-8 for BYTES."""
    if datatype == "BYTES":
        parts = []
        for value in array.ravel().tolist():
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(_LENGTH.pack(len(data)) + data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=_DTYPES[datatype]).tobytes()
