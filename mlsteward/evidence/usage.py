"""Dataset usage: every Model version trained on a dataset digest, and every Deployment that served one.

The starting point of an erasure request. :func:`find` is a pure function of the listed objects;
:func:`collect` lists them with the caller's own credentials, namespace by namespace when a
cluster-wide list is forbidden, and reports the namespaces it could not read.

A Deployment's promotion history (``status.history``: version, digest, at, action, reason,
approvedBy) is used when present; otherwise its ``activeVersion`` and ``canaryVersion`` say what
serves now, with the time of its last condition change.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mlsteward.evidence import cluster as cluster_module

Obj = dict[str, Any]


@dataclasses.dataclass
class Listing:
    """The Models and Deployments the caller could read, and the namespaces they could not."""

    models: list[Obj]
    deployments: list[Obj]
    unreadable: list[str] = dataclasses.field(default_factory=list)


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def find(models: list[Obj], deployments: list[Obj], dataset_sha256: str) -> Obj:
    """The versions trained on ``dataset_sha256`` and the Deployments that served them."""
    versions: list[Obj] = []
    matched: dict[tuple[str, str], dict[int, str | None]] = {}
    for model in sorted(models, key=_key):
        namespace, name = _key(model)
        status = model.get("status") or {}
        aliases = status.get("aliases") or {}
        for v in status.get("versions") or []:
            if v.get("datasetSha256") != dataset_sha256:
                continue
            digest = (v.get("artifact") or {}).get("digest")
            number = int(v["version"])
            matched.setdefault((namespace, name), {})[number] = digest
            versions.append(
                {
                    "namespace": namespace,
                    "model": name,
                    "version": number,
                    "phase": v.get("phase"),
                    "trained_at": v.get("createdAt"),
                    "artifact": digest,
                    "aliases": sorted(a for a in ("champion", "challenger") if aliases.get(a) == number),
                }
            )
    served: list[Obj] = []
    for deployment in sorted(deployments, key=_key):
        namespace, name = _key(deployment)
        model_name = ((deployment.get("spec") or {}).get("modelRef") or {}).get("name")
        found = matched.get((namespace, str(model_name)))
        if not found:
            continue
        wanted: dict[int, str | None] = found
        status = deployment.get("status") or {}
        history = status.get("history")
        if isinstance(history, list) and history:  # the schema defaults it to []: empty means none kept
            for entry in history:
                listed = entry.get("version")
                served_number = int(listed) if str(listed).isdigit() else None
                # A digest in the record is stronger than the number: versions can be renumbered.
                if served_number in wanted or (
                    entry.get("digest") and entry.get("digest") in wanted.values()
                ):
                    served.append(
                        {
                            "namespace": namespace,
                            "deployment": name,
                            "model": model_name,
                            "version": served_number,
                            "digest": entry.get("digest"),
                            "action": entry.get("action"),
                            "at": entry.get("at"),
                            "reason": entry.get("reason"),
                            "approved_by": entry.get("approvedBy"),
                            "source": "status.history",
                        }
                    )
            continue
        since = max(
            (
                str(c.get("lastTransitionTime"))
                for c in status.get("conditions") or []
                if c.get("lastTransitionTime")
            ),
            default=None,
        )
        for role, field in (("active", "activeVersion"), ("canary", "canaryVersion")):
            current = status.get(field)
            if isinstance(current, int) and current in wanted:
                served.append(
                    {
                        "namespace": namespace,
                        "deployment": name,
                        "model": model_name,
                        "version": current,
                        "digest": wanted[current],
                        "action": f"serving ({role})",
                        "at": since,
                        "reason": None,
                        "approved_by": None,
                        "source": f"status.{field}",
                    }
                )
    return {"dataset": f"sha256:{dataset_sha256}", "versions": versions, "deployments": served}


def collect(kube: cluster_module.Cluster, namespace: str | None) -> Listing:
    """Models and Deployments in ``namespace``, or (None) in every namespace the caller may read."""
    if namespace is not None:
        return Listing(
            kube.list_items(cluster_module.resource_path("models", namespace)),
            kube.list_items(cluster_module.resource_path("deployments", namespace)),
        )
    try:
        return Listing(
            kube.list_items(cluster_module.resource_path("models", None)),
            kube.list_items(cluster_module.resource_path("deployments", None)),
        )
    except cluster_module.ClusterError as error:
        if error.status != 403:
            raise
    # No cluster-wide read: walk the namespaces the caller can see, one by one; a caller who may
    # not even list namespaces gets their kubeconfig's namespace, and the answer says so.
    listing = Listing([], [])
    try:
        names = [str(n["metadata"]["name"]) for n in kube.list_items("/api/v1/namespaces")]
    except cluster_module.ClusterError as error:
        if error.status != 403:
            raise
        names = [kube.namespace]
        listing.unreadable.append("(namespaces cannot be listed with these credentials)")
    for name in names:
        try:
            models = kube.list_items(cluster_module.resource_path("models", name))
            deployments = kube.list_items(cluster_module.resource_path("deployments", name))
        except cluster_module.ClusterError as error:
            if error.status != 403:
                raise
            listing.unreadable.append(name)
            continue
        listing.models += models
        listing.deployments += deployments
    return listing
