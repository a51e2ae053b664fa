"""The feature schema (``spec.schema``): checking the data against it, and its digest for the lineage.

The check runs on the parsed frame before any coercion, so a text value in a number column or a
category outside the allowed list is reported as the data holds it. Every failure is a
``DataInvalid`` naming the column, the rule and a few offending values with their row count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlsteward.api import model as api_model
from mlsteward.store import artifacts
from mlsteward.training import errors

_EXAMPLES = 3


def resolved(spec: api_model.ModelSpec) -> api_model.FeatureSchemaSpec | None:
    """The spec's schema with its columns present, or None; a ConfigMap reference nobody resolved
    is an error (the operator copies the ConfigMap's schema in; a laptop spec must inline it)."""
    schema = spec.feature_schema
    if schema is None:
        return None
    if schema.columns is None or schema.version is None:
        ref = schema.config_map_ref
        where = f"ConfigMap {ref.name!r} key {ref.key!r}" if ref is not None else "nowhere"
        raise errors.DataInvalidError(
            f"schema.columns is empty: the shared schema ({where}) was not resolved into the spec "
            "(the ConfigMap is missing, lacks the key, or does not hold version and columns); "
            "give schema.version and schema.columns inline when training outside the cluster"
        )
    return schema


def document(schema: api_model.FeatureSchemaSpec) -> dict[str, Any]:
    """The part of the schema that defines it (version and columns), as wire JSON."""
    wire = schema.model_dump(mode="json", by_alias=True, include={"version", "columns"})
    return {"version": wire["version"], "columns": wire["columns"]}


def digest(schema: api_model.FeatureSchemaSpec) -> str:
    """sha256 of the schema's canonical JSON: the same declaration gives the same digest wherever
    it came from (inline or a ConfigMap)."""
    return artifacts.sha256_bytes(artifacts.canonical_json(document(schema)))


def lineage_entry(spec: api_model.ModelSpec) -> dict[str, Any] | None:
    """``{"version", "sha256", "config_map"}`` for the lineage, or None without a schema."""
    schema = resolved(spec)
    if schema is None:
        return None
    ref = schema.config_map_ref
    return {"version": schema.version, "sha256": digest(schema), "config_map": ref.name if ref else None}


def check(frame: pd.DataFrame, spec: api_model.ModelSpec) -> None:
    """Fail with DataInvalid when the spec's columns or the data do not match the schema."""
    schema = resolved(spec)
    if schema is None:
        return
    assert schema.columns is not None
    declared = {c.name: c for c in schema.columns}
    dataset = spec.dataset
    undeclared = [c for c in [dataset.target, *dataset.features, *dataset.sensitive] if c not in declared]
    if undeclared:
        raise errors.DataInvalidError(
            f"schema version {schema.version} does not declare column "
            f"{', '.join(repr(c) for c in undeclared)} (used by the spec's dataset)"
        )
    for column in schema.columns:
        if column.name not in frame.columns:
            raise errors.DataInvalidError(
                f"dataset has no column {column.name!r}, declared by schema version {schema.version}"
            )
        _check_column(column, frame[column.name], schema.version or "")


def _fail(column: str, version: str, rule: str, bad: pd.Series) -> errors.DataInvalidError:
    examples = [_plain(v) for v in pd.unique(bad)[:_EXAMPLES]]
    return errors.DataInvalidError(
        f"column {column!r} breaks schema version {version}: {rule}; {len(bad)} rows, for example {examples}"
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_column(column: api_model.FeatureColumn, series: pd.Series, version: str) -> None:
    missing = series.isna()
    if not column.nullable and bool(missing.any()):
        raise errors.DataInvalidError(
            f"column {column.name!r} breaks schema version {version}: it is not nullable but "
            f"{int(missing.sum())} rows are missing"
        )
    present = series[~missing]
    if isinstance(present.dtype, pd.CategoricalDtype):
        present = present.astype(object)
    kind = column.type
    is_bool = pd.api.types.is_bool_dtype(present.dtype)
    is_numeric = pd.api.types.is_numeric_dtype(present.dtype) and not is_bool
    if kind in ("number", "integer") and not is_numeric:
        bad = present[pd.to_numeric(present, errors="coerce").isna()] if len(present) else present
        raise _fail(column.name, version, f"type is {kind} but the data holds {present.dtype}", bad)
    if kind == "integer":
        values = present.to_numpy(dtype="float64")
        fractional = present[np.mod(values, 1) != 0]
        if len(fractional):
            raise _fail(column.name, version, "type is integer but values are fractional", fractional)
    if kind == "boolean" and not is_bool:
        bad = present[~present.astype(str).str.lower().isin(["true", "false", "0", "1"])]
        if len(bad) or not (is_numeric or present.dtype == object):
            raise _fail(column.name, version, "type is boolean but values are not true/false", bad)
    if kind == "string" and is_numeric:
        raise _fail(column.name, version, f"type is string but the data holds {present.dtype}", present)
    if kind in ("number", "integer"):
        values = present.to_numpy(dtype="float64")
        if column.minimum is not None and bool((values < column.minimum).any()):
            raise _fail(
                column.name,
                version,
                f"values below minimum {column.minimum}",
                present[values < column.minimum],
            )
        if column.maximum is not None and bool((values > column.maximum).any()):
            raise _fail(
                column.name,
                version,
                f"values above maximum {column.maximum}",
                present[values > column.maximum],
            )
    if column.allowed_values is not None:
        text = present.map(_text) if len(present) else present.astype(str)
        outside = present[~text.isin(set(column.allowed_values))]
        if len(outside):
            allowed = ", ".join(column.allowed_values[:10])
            raise _fail(column.name, version, f"values outside allowedValues [{allowed}]", outside)


def _text(value: Any) -> str:
    """A value as the schema's allowedValues spell it: whole floats without ``.0``, booleans lower-case."""
    value = _plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
