"""Names, labels, owner references and the restricted security context shared by all builders."""

from __future__ import annotations

import hashlib
from typing import Any, TypedDict

from mlsteward import api
from mlsteward.api import base

MANAGED_BY = "mlsteward-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MODEL = "mlsteward.io/model"
LABEL_VERSION = "mlsteward.io/version"
LABEL_DEPLOYMENT = "mlsteward.io/deployment"
ANNOTATION_GENERATION = "mlsteward.io/generation"
ANNOTATION_RETRAIN = "mlsteward.io/retrain"
ANNOTATION_SPEC_HASH = "mlsteward.io/spec-hash"
TMP_VOLUME = "tmp"
STORE_VOLUME = "artifact-store"
RUN_AS_USER = 65532
_MAX_NAME = 63


class OwnerReference(TypedDict):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class Owner(TypedDict):
    """What a builder needs to know about the parent object."""

    kind: str
    name: str
    namespace: str
    uid: str


def owner_of(body: dict[str, Any]) -> Owner:
    meta = body["metadata"]
    return Owner(kind=body["kind"], name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def owner_reference(owner: Owner) -> OwnerReference:
    return OwnerReference(
        apiVersion=api.API_VERSION,
        kind=owner["kind"],
        name=owner["name"],
        uid=owner["uid"],
        controller=True,
        blockOwnerDeletion=True,
    )


def child_name(base: str, suffix: str = "") -> str:
    """``base-suffix`` as a DNS label of at most 63 characters; long bases are cut and made
    unique with a short hash, so the same inputs always give the same name."""
    name = f"{base}-{suffix}" if suffix else base
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = _MAX_NAME - len(digest) - 2 - len(suffix)
    head = base[:keep].rstrip("-")
    return f"{head}-{digest}-{suffix}" if suffix else f"{head}-{digest}"


def label_value(text: str) -> str:
    """A label value (at most 63 characters) for an object name."""
    return text if len(text) <= _MAX_NAME else child_name(text)


def metadata(
    name: str,
    owner: Owner,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": name,
        "namespace": owner["namespace"],
        "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PART_OF: "mlsteward", **labels},
        "ownerReferences": [dict(owner_reference(owner))],
    }
    if annotations:
        result["annotations"] = annotations
    return result


def pod_security_context() -> dict[str, Any]:
    """Pod-level part of Pod Security ``restricted``."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level part of Pod Security ``restricted``, with a read-only root filesystem."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def tmp_volume() -> dict[str, Any]:
    return {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "1Gi"}}


def tmp_mount() -> dict[str, Any]:
    return {"name": TMP_VOLUME, "mountPath": "/tmp"}


def store_volume(claim_name: str, *, read_only: bool) -> dict[str, Any]:
    return {
        "name": STORE_VOLUME,
        "persistentVolumeClaim": {"claimName": claim_name, "readOnly": read_only},
    }


def store_mount(mount_path: str, *, read_only: bool) -> dict[str, Any]:
    return {"name": STORE_VOLUME, "mountPath": mount_path, "readOnly": read_only}


def resources(spec: base.Resources) -> dict[str, Any]:
    """A container's resources from the API's resource lists (unset quantities left out)."""
    result: dict[str, Any] = {}
    for key, quantities in (("requests", spec.requests), ("limits", spec.limits)):
        values = quantities.model_dump(exclude_none=True)
        if values:
            result[key] = values
    return result
