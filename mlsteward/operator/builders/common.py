"""Names, labels, owner references and the restricted security context shared by all builders."""

from __future__ import annotations

import hashlib
from typing import Any, TypedDict

from mlsteward import api
from mlsteward.api import base
from mlsteward.api import model as api_model

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
CACHE_VOLUME = "artifact-cache"
CACHE_DIR = "/var/cache/mlsteward"
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


def store_location(store: api_model.ArtifactStoreSpec, mount_path: str) -> str:
    """What ``--store`` says: the bucket for an S3 store, else where the PVC is mounted."""
    if store.s3 is None:
        return mount_path
    return f"s3://{store.s3.bucket}/{store.s3.prefix}".rstrip("/")


def store_env(store: api_model.ArtifactStoreSpec) -> list[dict[str, Any]]:
    """Connection settings of an S3 store (docs/store.md); credentials only as references to
    the Secret, so no manifest ever carries them. Empty for a PVC store."""
    if store.s3 is None:
        return []
    secret = store.s3.credentials_secret_ref.name
    env: list[dict[str, Any]] = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    env.append({"name": "AWS_REGION", "value": store.s3.region})
    if store.s3.endpoint is not None:
        env.append({"name": "MLSTEWARD_S3_ENDPOINT_URL", "value": store.s3.endpoint})
    if store.s3.path_style is not None:
        style = "path" if store.s3.path_style else "virtual"
        env.append({"name": "MLSTEWARD_S3_ADDRESSING_STYLE", "value": style})
    return env


def store_volumes(
    store: api_model.ArtifactStoreSpec, mount_path: str, *, read_only: bool, writable_volume: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts) for the store: the PVC, or for S3 an emptyDir download cache at
    CACHE_DIR (read-only pods only; writers upload straight from memory).

    ``writable_volume``: declare the PVC volume writable even though this mount is read-only,
    so another container of the pod (the monitor sidecar writing the decision log) may mount it
    read-write."""
    if store.s3 is None:
        return [store_volume(store.claim_name, read_only=read_only and not writable_volume)], [
            store_mount(mount_path, read_only=read_only)
        ]
    if not read_only:
        return [], []
    return [{"name": CACHE_VOLUME, "emptyDir": {}}], [{"name": CACHE_VOLUME, "mountPath": CACHE_DIR}]


def resources(spec: base.Resources) -> dict[str, Any]:
    """A container's resources from the API's resource lists (unset quantities left out)."""
    result: dict[str, Any] = {}
    for key, quantities in (("requests", spec.requests), ("limits", spec.limits)):
        values = quantities.model_dump(exclude_none=True)
        if values:
            result[key] = values
    return result
