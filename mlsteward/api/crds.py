"""Generate CustomResourceDefinitions from the pydantic models.

Pydantic writes JSON Schema (draft 2020-12); the API server wants a *structural* OpenAPI v3
schema: no ``$ref``, no ``anyOf`` for optional fields, no ``additionalProperties`` beside
``properties``, boolean ``exclusiveMinimum``. This module rewrites one into the other and adds
the CRD around it. Pure functions: no I/O.
"""

from __future__ import annotations

from typing import Any

import pydantic
import yaml
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from mlsteward.api import CATEGORY, GROUP, VERSION, resources

_DROP = {"title", "$defs"}


class _FactoryDefaults(GenerateJsonSchema):
    """Write ``default: {}`` / ``default: []`` for fields built by a default factory.

    The API server then fills nested objects in, and their own scalar defaults with them, so
    a stored object shows its effective settings and CEL rules can rely on ``has()``.
    """

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            produced = factory()  # type: ignore[call-arg]
            empty: object = {} if isinstance(produced, pydantic.BaseModel | dict) else []
            inner = self.generate_inner(schema["schema"])
            return {**inner, "default": empty}
        return super().default_schema(schema)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**_resolve(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    optional = node.get("anyOf")
    if isinstance(optional, list) and len(optional) == 2 and {"type": "null"} in optional:
        inner = next(option for option in optional if option != {"type": "null"})
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", 0) is None:
            del rest["default"]
        return _resolve({**inner, **rest}, defs)
    return {key: _resolve(value, defs) for key, value in node.items()}


def _structural(node: Any) -> Any:
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _structural(schema) for name, schema in value.items()}
        elif key == "const":
            out["enum"] = [value]
        elif key in {"exclusiveMinimum", "exclusiveMaximum"} and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "additionalProperties" and (value is False or value is True or "properties" in node):
            continue  # unknown fields are rejected by strict field validation instead
        elif key in {"x-kubernetes-validations", "enum", "required", "default"}:
            out[key] = value
        else:
            out[key] = _structural(value)
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None)
        out["type"] = "object"
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def openapi_schema(model: type[Any]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_FactoryDefaults)
    defs = raw.get("$defs", {})
    schema: dict[str, Any] = _structural(_resolve(raw, defs))
    return schema


def build_crd(kind: resources.Kind) -> dict[str, Any]:
    """The complete apiextensions.k8s.io/v1 CustomResourceDefinition of one kind."""
    spec_schema = openapi_schema(kind.spec)
    status_schema = openapi_schema(kind.status)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "mlsteward"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [_column(c) for c in kind.columns],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "mlsteward.io/v1alpha1"},
                                "kind": {"type": "string", "description": kind.kind},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def _column(column: resources.PrinterColumn) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": column.name, "type": column.type, "jsonPath": column.json_path}
    if column.description:
        entry["description"] = column.description
    if column.priority:
        entry["priority"] = column.priority
    return entry


def render_crds() -> dict[str, str]:
    """File name -> YAML text for every kind."""
    header = "# Generated by `mlsteward crds` from mlsteward/api. Do not edit.\n"
    return {
        f"{kind.plural}.{GROUP}.yaml": header + yaml.safe_dump(build_crd(kind), sort_keys=False, width=100)
        for kind in resources.KINDS
    }
