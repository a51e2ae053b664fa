"""Validation of the server's batches (docs/contracts.md §4) into binnable columns.

Pure: no I/O, no clock, no environment. A batch is checked completely *before* anything
touches a window, so a rejected batch changes nothing; every rejection carries a reason
from the closed list ``REASONS`` (a metric label) and a message naming the field.

Categorical columns are counted here (``collections.Counter`` runs in C) and only the
distinct values are type-checked, which keeps the per-row cost to one dictionary update.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import orjson
from numpy.typing import NDArray

from mlsteward.monitoring import summaries

Reason = Literal[
    "malformed_json",
    "bad_field",
    "unknown_feature",
    "missing_feature",
    "length_mismatch",
    "wrong_type",
    "missing_storm",
    "too_many_rows",
    "too_large",
]
REASONS: tuple[Reason, ...] = (
    "malformed_json",
    "bad_field",
    "unknown_feature",
    "missing_feature",
    "length_mismatch",
    "wrong_type",
    "missing_storm",
    "too_many_rows",
    "too_large",
)
ROUTES = ("champion", "challenger", "shadow")
BINARY_CONTENT_TYPE = "application/vnd.mlsteward.rows.v1"
_ARRAY_DTYPES = frozenset({"<f4", "<f8", "<i8", "<i4", "<u8", "<u4"})
_NUMBER_TYPES = frozenset({int, float, type(None)})
_GROUP_TYPES = frozenset({str, int, float, bool, type(None)})
MAX_VERSION_LENGTH = 64


class BatchError(ValueError):
    """A batch that must be rejected; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


@dataclasses.dataclass(frozen=True)
class Batch:
    """One validated batch, ready to add to a summary."""

    rows: int
    model_version: str
    route: str
    request_ids: Sequence[str] | None  # one per row, or one per request with ``request_rows``
    numeric: NDArray[np.float64]  # (layout.numeric, rows): one contiguous row per column, NaN = missing
    # column key -> value counts, or (from trusted in-process callers) the values themselves
    categorical: Mapping[str, Mapping[str | None, int] | Sequence[str | None]]
    labels: Sequence[str | None] | None
    scores: Sequence[float | None] | None
    metadata: Mapping[str, Sequence[object]]
    request_rows: Sequence[int] | None = None  # rows of each request (contracts §4's compact form)


def parse(
    document: object,
    layout: summaries.Layout,
    *,
    max_rows: int,
    max_missing_share: float,
    metadata_keys: Sequence[str] = (),
) -> Batch:
    """Validate a decoded ``POST /v1/rows`` body; raise ``BatchError`` on anything wrong."""
    if not isinstance(document, Mapping):
        raise BatchError("bad_field", "the body must be a JSON object")
    features = document.get("features")
    if not isinstance(features, Mapping):
        raise BatchError("bad_field", "'features' must be an object of feature name -> list of values")
    expected = {c.name for c in layout.columns if c.role == "feature"}
    unknown = sorted(set(features) - expected)
    if unknown:
        raise BatchError("unknown_feature", f"features {unknown} are not in the reference profile")
    absent = sorted(expected - set(features))
    if absent:
        raise BatchError("missing_feature", f"features {absent} are missing from the batch")
    prediction = document.get("prediction")
    if not isinstance(prediction, Mapping):
        raise BatchError("bad_field", "'prediction' must be an object with 'label' and 'score'")
    request_ids = document.get("request_ids")
    request_rows = _request_rows(document)
    rows = _row_count(features, request_ids, request_rows)
    if rows > max_rows:
        raise BatchError("too_many_rows", f"the batch has {rows} rows, more than the limit of {max_rows}")
    if request_ids is not None and request_rows is None:
        _check_list("request_ids", request_ids, rows)
        if not all(type(r) is str for r in request_ids):
            raise BatchError("wrong_type", "'request_ids' must be strings")
    version = document.get("model_version", "")
    if not isinstance(version, str) or len(version) > MAX_VERSION_LENGTH:
        raise BatchError(
            "bad_field", f"'model_version' must be a string of at most {MAX_VERSION_LENGTH} chars"
        )
    route = document.get("route", "champion")
    if route not in ROUTES:
        raise BatchError("bad_field", f"'route' must be one of {list(ROUTES)}, got {route!r}")

    block = np.empty((len(layout.numeric), rows), np.float64)
    categorical: dict[str, Mapping[str | None, int] | Sequence[str | None]] = {}
    missing = 0
    numeric_features: list[int] = []
    labels: Sequence[str | None] | None = None
    scores: Sequence[float | None] | None = None
    for column in layout.columns:
        if column.role == "feature":
            values = features[column.name]
            where = f"features.{column.name}"
        else:
            values = prediction.get(column.name)
            where = f"prediction.{column.name}"
        _check_list(where, values, rows)
        if column.kind == "numeric":
            _fill_numeric(block, column.numeric_index, values, where)
            if column.role == "feature":
                numeric_features.append(column.numeric_index)
            else:
                scores = values.tolist() if isinstance(values, np.ndarray) else values
        else:
            counts = _count_categorical(values, where)
            categorical[column.key] = counts
            if column.role == "feature":
                missing += counts.get(None, 0)
            else:
                labels = values
    # Whole-block checks, once per batch rather than once per column.
    if np.isinf(block).any():
        index = int(np.flatnonzero(np.isinf(block).any(axis=1))[0])
        name = next(c for c in layout.columns if c.kind == "numeric" and c.numeric_index == index)
        section = "features" if name.role == "feature" else "prediction"
        raise BatchError("wrong_type", f"'{section}.{name.name}' holds a non-finite number")
    if numeric_features:
        missing += int(np.count_nonzero(np.isnan(block[numeric_features])))
    cells = rows * len(expected)
    if cells and missing / cells > max_missing_share:
        raise BatchError(
            "missing_storm",
            f"{missing} of {cells} feature values are missing, "
            f"more than the allowed share {max_missing_share}",
        )
    metadata = _metadata(document.get("metadata"), rows, metadata_keys)
    return Batch(
        rows,
        version,
        route,
        request_ids,
        block,
        categorical,
        labels,
        scores,
        metadata,
        request_rows=request_rows,
    )


_MAX_EXPANDED_ROWS = 10_000_000  # a bound on ``request_rows`` before any row id is made


def decode_binary(body: bytes, *, compact: bool = False) -> dict[str, Any]:
    """The document of a binary ``POST /v1/rows`` body (contracts §4): the header JSON with each
    ``{"$array": [dtype, offset, count]}`` replaced by a read-only numpy view of the bytes.

    ``request_ids`` + ``request_rows`` (one id per request) become one id per row, the JSON form,
    unless ``compact``: then the pair stays as it came (what the sidecar does: its label join
    buffer keeps one entry per request; ``row_ids`` gives the row ids where they are needed).
    """
    if len(body) < 4:
        raise BatchError("malformed_json", "the binary body is shorter than its 4-byte header length")
    length = int.from_bytes(body[:4], "little")
    if 4 + length > len(body):
        raise BatchError("malformed_json", f"the binary header claims {length} bytes, the body is shorter")
    try:
        document = orjson.loads(body[4 : 4 + length])
    except orjson.JSONDecodeError as error:
        raise BatchError("malformed_json", f"the binary header is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise BatchError("bad_field", "the binary header must be a JSON object")
    data = memoryview(body)[4 + length :]

    def resolve(value: Any, where: str) -> Any:
        if not (isinstance(value, dict) and "$array" in value):
            return value
        spec = value["$array"]
        if not (isinstance(spec, list) and len(spec) == 3 and spec[0] in _ARRAY_DTYPES):
            raise BatchError("bad_field", f"'{where}': $array must be [dtype, offset, count]")
        dtype, offset, count = np.dtype(spec[0]), spec[1], spec[2]
        if not (type(offset) is int and type(count) is int and offset >= 0 and count >= 0):
            raise BatchError("bad_field", f"'{where}': $array offset and count must be non-negative integers")
        if offset + count * dtype.itemsize > len(data):
            raise BatchError("length_mismatch", f"'{where}': $array reaches past the end of the body")
        return np.frombuffer(data, dtype, count, offset)

    for key in list(document):
        document[key] = resolve(document[key], key)
    for section in ("features", "prediction"):
        inner = document.get(section)
        if isinstance(inner, dict):
            for key in list(inner):
                inner[key] = resolve(inner[key], f"{section}.{key}")
    _check_request_rows(document)
    if not compact and "request_rows" in document:
        document["request_ids"] = row_ids(document)
        del document["request_rows"]
    _expand_label_names(document)
    return document


def _check_request_rows(document: dict[str, Any]) -> None:
    """``request_ids`` (one per request) + ``request_rows`` (contracts §4's compact form) must fit.

    The pair is kept as it is: the label join buffer holds one entry per request, and ``row_ids``
    derives the ids of the rows (``<id>:<i>``) where one is needed per row.
    """
    if "request_rows" not in document:
        return
    counts, ids = document["request_rows"], document.get("request_ids")
    if not (isinstance(counts, np.ndarray) and counts.dtype.kind in "iu"):
        raise BatchError("bad_field", "'request_rows' must be an integer $array")
    if not (isinstance(ids, list) and all(type(r) is str for r in ids)):
        raise BatchError("bad_field", "'request_rows' needs 'request_ids' as a list of strings")
    if len(ids) != len(counts):
        raise BatchError(
            "length_mismatch", f"'request_rows' has {len(counts)} entries, 'request_ids' {len(ids)}"
        )
    if len(counts) and (int(counts.min()) < 1 or int(counts.sum()) > _MAX_EXPANDED_ROWS):
        raise BatchError("bad_field", "'request_rows' entries must be at least 1 and sum to a sane row count")


def _request_rows(document: Mapping[str, Any]) -> list[int] | None:
    """The rows of each request, when the body came in the compact form (binary bodies only)."""
    counts = document.get("request_rows")
    return counts.tolist() if isinstance(counts, np.ndarray) else None


def row_ids(document: Mapping[str, Any]) -> list[str] | None:
    """One request id per row (contracts §4): row ``i`` of an ``N``-row request is ``<id>:<i>``, a
    one-row request keeps ``<id>``. ``None`` when the body carries no request ids."""
    ids = document.get("request_ids")
    counts = _request_rows(document)
    if counts is None or not isinstance(ids, list):
        return ids if isinstance(ids, list) else None
    rows: list[str] = []
    for rid, count in zip(ids, counts, strict=True):
        if count == 1:
            rows.append(rid)
        else:
            rows.extend([f"{rid}:{i}" for i in range(count)])
    return rows


def _expand_label_names(document: dict[str, Any]) -> None:
    """``prediction.label`` as indices into ``prediction.label_names`` -> the labels (contracts §4)."""
    prediction = document.get("prediction")
    if not (isinstance(prediction, dict) and "label_names" in prediction):
        return
    names, indices = prediction.pop("label_names"), prediction.get("label")
    if not (isinstance(names, list) and all(type(n) is str for n in names)):
        raise BatchError("wrong_type", "'prediction.label_names' must be a list of strings")
    if not (isinstance(indices, np.ndarray) and indices.dtype.kind in "iu"):
        raise BatchError("wrong_type", "'prediction.label' must be an integer $array with 'label_names'")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= len(names)):
        raise BatchError("bad_field", "'prediction.label' has an index outside 'label_names'")
    prediction["label"] = CodedLabels(
        np.asarray(names, dtype=object)[indices].tolist(),
        np.bincount(indices, minlength=len(names)).tolist() if len(names) else [],
        names,
    )


class CodedLabels(list[str]):
    """Labels that came as indices into ``label_names`` (a binary body), with the count of each
    name already taken from the indices: counting them needs no pass over the rows. Only
    ``decode_binary`` makes one (a JSON body cannot), so the counts are trusted."""

    def __init__(self, labels: list[str], counts: list[int], names: list[str]) -> None:
        super().__init__(labels)
        self.counts: collections.Counter[str | None] = collections.Counter()
        for name, count in zip(names, counts, strict=True):
            if count:
                self.counts[name] += count


def _row_count(features: Mapping[str, Any], request_ids: object, request_rows: list[int] | None) -> int:
    if request_rows is not None:
        return sum(request_rows)
    if isinstance(request_ids, list):
        return len(request_ids)
    for values in features.values():
        if isinstance(values, list | np.ndarray):
            return len(values)
    return 0


def _check_list(where: str, values: object, rows: int) -> None:
    if isinstance(values, np.ndarray) and values.ndim == 1:
        if len(values) != rows:
            raise BatchError("length_mismatch", f"'{where}' has {len(values)} entries, expected {rows}")
        return
    if not isinstance(values, list):
        raise BatchError("bad_field", f"'{where}' must be a list with one entry per row")
    if len(values) != rows:
        raise BatchError("length_mismatch", f"'{where}' has {len(values)} entries, expected {rows}")


def _fill_numeric(block: NDArray[np.float64], index: int, values: Any, where: str) -> None:
    if isinstance(values, np.ndarray):  # a binary body's column: no per-value type check needed
        if values.dtype.kind != "f":
            raise BatchError("wrong_type", f"'{where}' must be floating point, found {values.dtype}")
        block[index] = values  # NaN = missing; infinities are refused for the whole block in parse
    else:
        _fill_numeric_list(block, index, values, where)


def _fill_numeric_list(block: NDArray[np.float64], index: int, values: list[Any], where: str) -> None:
    kinds = set(map(type, values))
    if not kinds <= _NUMBER_TYPES:
        wrong = sorted(k.__name__ for k in kinds - _NUMBER_TYPES)
        raise BatchError("wrong_type", f"'{where}' must hold numbers or null, found {wrong}")
    try:
        block[index] = values  # None becomes NaN
    except (OverflowError, ValueError) as error:
        raise BatchError("wrong_type", f"'{where}': {error}") from error


def _count_categorical(values: list[Any], where: str) -> collections.Counter[str | None]:
    if isinstance(values, CodedLabels):
        return values.counts
    try:
        counts: collections.Counter[str | None] = collections.Counter(values)
    except TypeError as error:  # an unhashable value: a list or an object
        raise BatchError("wrong_type", f"'{where}' must hold strings or null") from error
    for value in counts:
        if value is not None and type(value) is not str:
            raise BatchError(
                "wrong_type", f"'{where}' must hold strings or null, found {type(value).__name__}"
            )
    return counts


def _metadata(raw: object, rows: int, keys: Sequence[str]) -> dict[str, Sequence[object]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise BatchError("bad_field", "'metadata' must be an object of name -> list of values")
    kept: dict[str, Sequence[object]] = {}
    for key in keys:
        values = raw.get(key)
        if values is None:
            continue
        _check_list(f"metadata.{key}", values, rows)
        if not set(map(type, values)) <= _GROUP_TYPES:
            raise BatchError("wrong_type", f"'metadata.{key}' must hold strings, numbers, booleans or null")
        kept[key] = values
    return kept


@dataclasses.dataclass(frozen=True)
class LabelBatch:
    """A validated ``POST /v1/labels`` body."""

    request_ids: Sequence[str]
    labels: Sequence[str] | Sequence[float]


def parse_labels(document: object, task: str, max_rows: int) -> LabelBatch:
    if not isinstance(document, Mapping):
        raise BatchError("bad_field", "the body must be a JSON object")
    request_ids = document.get("request_ids")
    labels = document.get("labels")
    if not isinstance(request_ids, list) or not all(type(r) is str for r in request_ids):
        raise BatchError("bad_field", "'request_ids' must be a list of strings")
    if len(request_ids) > max_rows:
        raise BatchError("too_many_rows", f"{len(request_ids)} labels, more than the limit of {max_rows}")
    _check_list("labels", labels, len(request_ids))
    assert isinstance(labels, list)
    if task == "regression":
        if not set(map(type, labels)) <= {int, float}:
            raise BatchError("wrong_type", "'labels' must be numbers for a regression model")
        return LabelBatch(request_ids, [float(v) for v in labels])
    if not set(map(type, labels)) <= {str, int}:
        raise BatchError("wrong_type", "'labels' must be class names (strings) for a classification model")
    return LabelBatch(request_ids, [v if type(v) is str else str(v) for v in labels])
