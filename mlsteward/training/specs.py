"""Reading the Model spec: from a file or a variable, YAML or JSON, bare or inside a Model object.

pydantic checks field types and limits; the cross-field rules the API server enforces with CEL
(target not a feature, categorical ⊆ features, ...) are checked again here, because a spec
given on a laptop never passed through an API server.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pydantic
import yaml

from mlsteward.api import model as api_model
from mlsteward.training import errors


# Spec fields that determine the artifact's content. Resources, the store, the retraining
# policy and the deadline change how a Job runs, not what it writes.
def read_spec_text(path: pathlib.Path | None, text: str | None) -> str:
    if path is not None:
        try:
            return path.read_text(encoding="utf-8")
        except OSError as error:
            raise errors.DataInvalidError(
                f"cannot read the Model spec file {path}: {error.strerror}"
            ) from error
    if text is None:
        raise errors.DataInvalidError("no Model spec given")
    return text


def parse_spec(text: str, source: str = "the Model spec") -> api_model.ModelSpec:
    """Parse YAML or JSON text holding a bare ModelSpec or a whole Model object with ``spec:``."""
    try:
        document: Any = json.loads(text)
    except ValueError:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise errors.DataInvalidError(f"{source} is neither JSON nor YAML: {error}") from error
    if not isinstance(document, dict):
        raise errors.DataInvalidError(f"{source} must be a mapping, got {type(document).__name__}")
    if "spec" in document and ("kind" in document or "apiVersion" in document or "metadata" in document):
        kind = document.get("kind", "Model")
        if kind != "Model":
            raise errors.DataInvalidError(f"{source} is a {kind!r} object, expected a Model")
        document = document["spec"]
        if not isinstance(document, dict):
            raise errors.DataInvalidError(f"{source}: spec must be a mapping")
    try:
        spec = api_model.ModelSpec.model_validate(document)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '(root)'}: {item['msg']}" for item in error.errors()
        )
        if all(item["loc"][:1] == ("estimator",) for item in error.errors()):
            raise errors.EstimatorInvalidError(f"{source} has an invalid estimator: {problems}") from error
        raise errors.DataInvalidError(f"{source} is invalid: {problems}") from error
    check_cross_field_rules(spec)
    return spec


def check_cross_field_rules(spec: api_model.ModelSpec) -> None:
    """The CRD's CEL rules that are not about protected attributes (those live in policy)."""
    dataset = spec.dataset
    allowed = api_model.CLASSIFIERS if spec.task == "classification" else api_model.REGRESSORS
    if spec.estimator.class_name not in allowed:
        raise errors.EstimatorInvalidError(
            f"estimator.className {spec.estimator.class_name!r} is not a {spec.task} estimator; "
            f"use one of {', '.join(allowed)}"
        )
    duplicates = sorted({f for f in dataset.features if dataset.features.count(f) > 1})
    if duplicates:
        raise errors.DataInvalidError(f"dataset.features lists {', '.join(duplicates)} more than once")
    if dataset.target in dataset.features:
        raise errors.DataInvalidError(
            f"the target column {dataset.target!r} is also listed in dataset.features"
        )
    if dataset.target in dataset.sensitive:
        raise errors.DataInvalidError(
            f"the target column {dataset.target!r} is also listed in dataset.sensitive"
        )
    stray = [c for c in dataset.categorical if c not in dataset.features]
    if stray:
        raise errors.DataInvalidError(
            f"dataset.categorical lists {', '.join(stray)}, which is not in dataset.features"
        )


def hashed_document(spec: api_model.ModelSpec) -> dict[str, Any]:
    """The fields the spec hash covers, as wire JSON: parsing it back gives the same hash."""
    wire: dict[str, Any] = spec.model_dump(mode="json", by_alias=True, include=set(api_model.HASHED_FIELDS))
    return wire


def spec_hash(spec: api_model.ModelSpec) -> str:
    """The spec hash recorded in the lineage (one definition, in the API)."""
    return api_model.spec_hash(spec)
