"""Loading the dataset (local path, file://, http(s)://, s3://; CSV or Parquet), hashing it, checking it.

The bytes are read once: each chunk goes into the sha256 and into the buffer the parser reads,
and a pinned digest is compared before any parsing. :func:`validate` then checks the columns
against the spec and returns the frame the pipeline is fitted on: numeric features as float64,
categorical features as text (missing values as ``""``), the target, and the sensitive columns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np
import pandas as pd

from mlsteward.api import model as api_model
from mlsteward.store import s3
from mlsteward.store.errors import StoreError
from mlsteward.training import errors

_CHUNK = 1 << 22
HTTP_TIMEOUT_S = 60.0
MISSING_CATEGORY = ""


@dataclasses.dataclass(frozen=True)
class RawDataset:
    """The dataset's bytes, digest and format, not yet parsed."""

    uri: str
    format: str
    sha256: str
    content: bytearray


def infer_format(uri: str, declared: str | None) -> str:
    if declared is not None:
        return declared
    path = urllib.parse.urlparse(uri).path.lower()
    if path.endswith((".csv", ".csv.gz")):
        return "csv"
    if path.endswith((".parquet", ".pq")):
        return "parquet"
    raise errors.DataInvalidError(
        f"cannot tell the format of dataset {uri!r} from its suffix: set dataset.format to csv or parquet"
    )


def fetch(uri: str, declared_format: str | None, pinned_sha256: str | None) -> RawDataset:
    """Read the dataset's bytes, hashing while reading; fail before parsing on a digest mismatch."""
    data_format = infer_format(uri, declared_format)
    digest = hashlib.sha256()
    buffer = bytearray()
    parsed = urllib.parse.urlparse(uri)
    try:
        if parsed.scheme in ("http", "https"):
            with urllib.request.urlopen(uri, timeout=HTTP_TIMEOUT_S) as response:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    buffer += chunk
        elif parsed.scheme in ("", "file"):
            path = pathlib.Path(urllib.request.url2pathname(parsed.path) if parsed.scheme else uri)
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    buffer += chunk
        elif parsed.scheme == "s3":
            for chunk in s3.stream_object(uri, s3.S3Settings.from_environment(os.environ)):
                digest.update(chunk)
                buffer += chunk
        else:
            raise errors.DataInvalidError(
                f"dataset URI scheme {parsed.scheme!r} is not supported by the trainer: use an absolute "
                "path (a mounted volume), file://, http(s):// or s3://"
            )
    except StoreError as error:
        message = f"cannot read dataset {uri}: {error} ({error.reason})"
        if error.reason in ("ObjectMissing", "InvalidLocation"):
            raise errors.DataInvalidError(message) from error  # the spec names no such object
        raise errors.store_failure(error, message) from error
    except urllib.error.HTTPError as error:
        raise errors.DataInvalidError(
            f"cannot download dataset {uri}: HTTP {error.code} {error.reason}"
        ) from error
    except urllib.error.URLError as error:
        raise errors.DataInvalidError(f"cannot download dataset {uri}: {error.reason}") from error
    except OSError as error:
        raise errors.DataInvalidError(f"cannot read dataset {uri}: {error.strerror or error}") from error
    actual = digest.hexdigest()
    if pinned_sha256 is not None and actual != pinned_sha256:
        raise errors.DigestMismatchError(
            f"dataset {uri} has sha256 {actual}, but dataset.sha256 pins {pinned_sha256}: refusing to train",
            actual,
        )
    return RawDataset(uri=uri, format=data_format, sha256=actual, content=buffer)


def parse(raw: RawDataset, columns: list[str]) -> pd.DataFrame:
    """Parse the bytes into a frame holding ``columns`` (those present; absent ones are reported later)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    try:
        if raw.format == "parquet":
            schema = pq.ParquetFile(pa.BufferReader(raw.content)).schema_arrow
            wanted = [c for c in columns if c in set(schema.names)]
            # Text columns decode straight into dictionary arrays (the file's own dictionary
            # pages): no Python string, and no hashing of every row, before pandas sees them.
            text = [c for c in wanted if _is_text(pa, schema.field(c).type)]
            parquet = pq.ParquetFile(pa.BufferReader(raw.content), read_dictionary=text)
            table = parquet.read(columns=wanted).unify_dictionaries()
        else:
            source: Any = pa.BufferReader(raw.content)
            if raw.uri.lower().endswith(".gz"):
                source = pa.CompressedInputStream(source, "gzip")
            table = pa_csv.read_csv(source)
            table = table.select([c for c in columns if c in set(table.column_names)])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
        raise errors.DataInvalidError(f"dataset {raw.uri} is not valid {raw.format}: {error}") from error
    # Text columns arrive as pandas categoricals: no Python string per row until one is needed.
    return table.to_pandas(strings_to_categorical=True, split_blocks=True, self_destruct=True)


def _is_text(pa: Any, arrow_type: Any) -> bool:
    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def validate(frame: pd.DataFrame, spec: api_model.ModelSpec) -> pd.DataFrame:
    """Check the columns against the spec; return the frame the trainer uses (see module docstring)."""
    dataset = spec.dataset
    required = [dataset.target, *dataset.features]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise errors.DataInvalidError(
            f"dataset has no column {', '.join(repr(c) for c in missing)} "
            "(named as target or feature in the spec)"
        )
    if len(frame) == 0:
        raise errors.DataInvalidError("dataset is empty: it has a header but no rows")
    out: dict[str, Any] = {}
    categorical = set(dataset.categorical)
    for column in dataset.features:
        series = frame[column]
        if series.isna().all():
            raise errors.DataInvalidError(f"feature {column!r} is missing in every row")
        out[column] = (
            _objects(_categorical(column, series)) if column in categorical else _numeric(column, series)
        )
    target = _target(dataset.target, frame[dataset.target], spec.task)
    out[dataset.target] = _objects(target) if target.dtype == object else target
    for column in dataset.sensitive:
        if column in frame.columns:
            out[column] = frame[column]
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def _objects(values: np.ndarray[Any, Any]) -> pd.Series:
    """Text kept as an object column: pandas 3 would otherwise copy it into a string array, and
    every consumer (the pipeline, ONNX Runtime) turns it back into Python strings, row by row."""
    return pd.Series(values, dtype=object, copy=False)


def _numeric(column: str, series: pd.Series) -> np.ndarray[Any, Any]:
    if pd.api.types.is_bool_dtype(series.dtype):
        return np.asarray(series.astype("float64").to_numpy())
    if not pd.api.types.is_numeric_dtype(series.dtype):
        sample = series.dropna().astype(str).head(3).tolist()
        raise errors.DataInvalidError(
            f"feature {column!r} is numeric in the spec (not in dataset.categorical) but holds text, "
            f"for example {sample}: list it in dataset.categorical or fix the data"
        )
    values: np.ndarray[Any, Any] = np.asarray(series.to_numpy(dtype="float64", na_value=np.nan))
    if np.isinf(values).any():
        raise errors.DataInvalidError(f"feature {column!r} holds infinite values")
    return values


def _categorical(column: str, series: pd.Series) -> np.ndarray[Any, Any]:
    if pd.api.types.is_float_dtype(series.dtype):
        present = series.dropna()
        if not np.all(np.mod(present.to_numpy(), 1) == 0):
            raise errors.DataInvalidError(
                f"feature {column!r} is categorical in the spec but holds fractional numbers such as "
                f"{present[np.mod(present.to_numpy(), 1) != 0].head(3).tolist()}: declare it numeric"
            )
        series = series.astype("Int64")
    return _text(series)


def _text(series: pd.Series) -> np.ndarray[Any, Any]:
    """Values as Python strings in an object array, missing values as ``MISSING_CATEGORY``."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        # One string per category, gathered by code: far cheaper than converting every row.
        names = np.asarray([str(c) for c in series.cat.categories] + [MISSING_CATEGORY], dtype=object)
        codes = series.cat.codes.to_numpy()
        return names[np.where(codes < 0, len(names) - 1, codes)]
    missing = series.isna().to_numpy()
    text: np.ndarray[Any, Any] = series.astype(str).to_numpy(dtype=object)
    text[missing] = MISSING_CATEGORY
    return text


def _target(column: str, series: pd.Series, task: str) -> np.ndarray[Any, Any]:
    missing = int(series.isna().sum())
    if missing:
        raise errors.DataInvalidError(f"target {column!r} is missing in {missing} rows; drop or label them")
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            raise errors.DataInvalidError(
                f"target {column!r} must be numeric for regression, got {series.dtype}"
            )
        return np.asarray(series.to_numpy(dtype="float64"))
    if pd.api.types.is_bool_dtype(series.dtype):
        values: np.ndarray[Any, Any] = series.astype("int64").to_numpy()
    elif pd.api.types.is_integer_dtype(series.dtype):
        values = series.to_numpy(dtype="int64")
    elif pd.api.types.is_float_dtype(series.dtype):
        raw = series.to_numpy(dtype="float64")
        if not np.all(np.mod(raw, 1) == 0):
            raise errors.DataInvalidError(
                f"target {column!r} holds fractional numbers but task is classification: use regression "
                "or integer/text class labels"
            )
        values = raw.astype("int64")
    else:
        values = _text(series)
    classes, counts = np.unique(values, return_counts=True)
    if len(classes) < 2:
        raise errors.DataInvalidError(
            f"target {column!r} has a single class ({classes[0]!r}) in every row: nothing to classify"
        )
    rare = [str(c) for c, n in zip(classes, counts, strict=True) if n < 2]
    if rare:
        raise errors.DataInvalidError(
            f"target {column!r} has classes with a single row ({', '.join(rare)}): a stratified split "
            "needs at least 2 rows per class"
        )
    return values
