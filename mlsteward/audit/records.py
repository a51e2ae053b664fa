"""The canonical digest of a row's inputs, as the decision log records it.

Pure: no I/O, no clock. ``input_sha256`` is ``sha256:`` + the hex sha256 of the row's *canonical
bytes*: for each feature in order of its name (sorted by code point), numbers as the 4-byte
little-endian IEEE-754 float32 the model scored (a missing number as the quiet NaN
``0x7FC00000``), categories as their UTF-8 bytes preceded by their length as a 4-byte
little-endian unsigned integer. For example, ``{"age": 41.0, "purpose": "car"}`` is
``struct.pack("<f", 41.0) + struct.pack("<I", 3) + b"car"``. Anyone holding the request can
recompute it (``input_digest``); a batch is hashed with numpy building every row's bytes at once
(``input_digests``), one hash call per row.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_NAN = 0x7FC00000


def canonical_row(row: Mapping[str, Any]) -> bytes:
    """The canonical bytes of one row: strings are categories, numbers or None are numbers."""
    pieces = []
    for name in sorted(row):
        value = row[name]
        if isinstance(value, str):
            encoded = value.encode()
            pieces.append(struct.pack("<I", len(encoded)) + encoded)
        elif value is None or math.isnan(value):  # missing: the canonical NaN
            pieces.append(struct.pack("<I", _NAN))
        else:
            pieces.append(np.asarray([value], dtype="<f4").tobytes())  # the same rounding as a batch
    return b"".join(pieces)


def input_digest(row: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the row's canonical bytes."""
    return "sha256:" + hashlib.sha256(canonical_row(row)).hexdigest()


def input_digests(columns: Mapping[str, Sequence[Any]], count: int) -> list[str]:
    """Digests of every row of column-oriented values (contracts §4 ``features``).

    Consecutive numeric features (in name order) become one ``[rows, 4 * k]`` byte matrix, so a
    row's bytes are a few slices joined, not one piece per value.
    """
    if count == 0:
        return []
    runs: list[list[np.ndarray[Any, Any]]] = []  # consecutive numeric columns
    parts: list[list[bytes]] = []  # per piece of the row, its bytes for every row
    for name in sorted(columns):
        values = columns[name]
        if len(values) != count:
            raise ValueError(f"feature {name!r} has {len(values)} values, expected {count}")
        if type(values[0]) is str:  # the server sends categories as strings ("" when missing)
            if runs and runs[-1]:
                parts.append(_rows_of(runs[-1], count))
            runs.append([])
            parts.append([struct.pack("<I", len(b)) + b for b in (v.encode() for v in values)])
            continue
        numbers = np.asarray(values, dtype=np.float64).astype("<f4").view("<u4")
        numbers[np.isnan(numbers.view("<f4"))] = _NAN
        if not runs:
            runs.append([])
        runs[-1].append(numbers.reshape(count, 1))
    if runs and runs[-1]:
        parts.append(_rows_of(runs[-1], count))
    sha256 = hashlib.sha256
    if len(parts) == 1:
        return ["sha256:" + sha256(row).hexdigest() for row in parts[0]]
    return ["sha256:" + sha256(b"".join(row)).hexdigest() for row in zip(*parts, strict=True)]


def _rows_of(numeric: list[np.ndarray[Any, Any]], count: int) -> list[bytes]:
    data = np.ascontiguousarray(np.hstack(numeric)).tobytes()
    width = len(data) // count
    return [data[i : i + width] for i in range(0, len(data), width)]
