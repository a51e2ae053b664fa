"""Shared building blocks of the API: the model base class, conditions and resources."""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import alias_generators

# The k8s quantity grammar, e.g. 500m, 2, 1.5Gi, 512Mi.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
# Go-style durations the operator accepts: 30s, 15m, 6h, 1h30m.
DURATION_PATTERN = r"^([0-9]+(s|m|h))+$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
# RFC 1123 DNS label: the names of Kubernetes objects we reference.
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
COLUMN_PATTERN = r"^[^\x00-\x1f]{1,128}$"


class ApiModel(pydantic.BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields rejected."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict as it appears in a manifest (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry (a CEL rule checked by the API server)."""
    entry = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules for a model class."""
    return {"x-kubernetes-validations": list(rules)}


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One observation of the object's state, following the Kubernetes API conventions."""

    type: str = pydantic.Field(max_length=316, pattern=r"^[A-Z][A-Za-z0-9]*$")
    """CamelCase kind of condition: Ready, Reconciling, Stalled, and kind-specific ones."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = pydantic.Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """A CamelCase word for why the condition is in its status, for machines."""
    message: str = pydantic.Field(default="", max_length=32768)
    """A sentence for people: what happened and what to do about it."""
    last_transition_time: str = pydantic.Field(json_schema_extra={"format": "date-time"})
    """When the status last changed (RFC 3339)."""
    observed_generation: int | None = pydantic.Field(default=None, ge=0)
    """The metadata.generation this condition was computed from."""


class ResourceList(ApiModel):
    """CPU and memory quantities, as in a Pod's resources."""

    cpu: str | None = pydantic.Field(default=None, pattern=QUANTITY_PATTERN, max_length=32)
    """CPU quantity, for example 500m or 2."""
    memory: str | None = pydantic.Field(default=None, pattern=QUANTITY_PATTERN, max_length=32)
    """Memory quantity, for example 512Mi or 2Gi."""


class Resources(ApiModel):
    """Compute resources for the pods the operator creates."""

    requests: ResourceList = pydantic.Field(default_factory=ResourceList)
    """Guaranteed resources; the scheduler places the pod by these."""
    limits: ResourceList = pydantic.Field(default_factory=ResourceList)
    """Hard limits; a container over its memory limit is killed."""


class StatusBase(ApiModel):
    """Fields every status carries, so kstatus, Flux, Argo CD and kubectl wait understand it."""

    observed_generation: int | None = pydantic.Field(default=None, ge=0)
    """The metadata.generation the operator last reconciled; absent until the first pass."""
    conditions: list[Condition] = pydantic.Field(default_factory=list, max_length=32)
    """Ready, Reconciling, Stalled and kind-specific conditions."""
    phase: str | None = pydantic.Field(default=None, max_length=64)
    """A one-word summary for `kubectl get`; read the conditions for decisions."""
