"""Where the evidence comes from: a Model version in the cluster, its artifact, its Deployments.

Every artifact is opened through the store, which verifies the manifest and every file against
the digest before anything is read (an artifact that fails is refused, never half-used).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
from typing import Any

from mlsteward.evidence import cluster as cluster_module
from mlsteward.store import artifacts, stores
from mlsteward.store.errors import StoreError

Obj = dict[str, Any]


class EvidenceError(Exception):
    """Bad input or missing evidence: a message for people naming the thing that is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass(frozen=True)
class VersionRecord:
    """One Model version as the cluster records it (or as given offline: body and record empty)."""

    namespace: str | None
    model: str | None
    number: int | None
    body: Obj
    """The whole Model object (empty offline)."""
    record: Obj
    """The version's entry in status.versions (empty offline)."""
    artifact_uri: str
    digest: str


def strip_digest(value: str) -> str:
    """``sha256:<hex>`` or ``<hex>`` -> ``<hex>``, checked."""
    digest = value.removeprefix("sha256:").strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise EvidenceError(f"{value!r} is not a sha256 digest: expected sha256:<64 hex digits>")
    return digest


def read_version(
    cluster: cluster_module.Cluster, namespace: str, model: str, number: int | None
) -> VersionRecord:
    """The Model's version ``number`` (default: the champion, else the newest with an artifact)."""
    try:
        body = cluster.get(cluster_module.resource_path("models", namespace, model))
    except cluster_module.ClusterError as error:
        if error.status == 404:
            raise EvidenceError(f"Model {namespace}/{model} does not exist") from error
        raise EvidenceError(f"cannot read Model {namespace}/{model}: {error.message}") from error
    status = body.get("status") or {}
    versions = [v for v in status.get("versions") or [] if isinstance(v, dict)]
    if number is None:
        champion = (status.get("aliases") or {}).get("champion")
        with_artifact = [v for v in versions if (v.get("artifact") or {}).get("digest")]
        chosen = next((v for v in versions if v.get("version") == champion), None) or (
            with_artifact[-1] if with_artifact else None
        )
        if chosen is None:
            raise EvidenceError(f"Model {namespace}/{model} has no version with an artifact yet")
    else:
        chosen = next((v for v in versions if v.get("version") == number), None)
        if chosen is None:
            known = ", ".join(str(v.get("version")) for v in versions) or "none"
            raise EvidenceError(
                f"Model {namespace}/{model} has no version {number} in status.versions (known: {known})"
            )
    artifact = chosen.get("artifact") or {}
    if not artifact.get("digest") or not artifact.get("uri"):
        raise EvidenceError(
            f"version {chosen.get('version')} of Model {namespace}/{model} has no artifact "
            f"(phase {chosen.get('phase')}, reason {chosen.get('reason')})"
        )
    return VersionRecord(
        namespace=namespace,
        model=model,
        number=int(chosen["version"]),
        body=body,
        record=chosen,
        artifact_uri=str(artifact["uri"]),
        digest=str(artifact["digest"]),
    )


def offline_version(artifact_uri: str) -> VersionRecord:
    """A version known only by its artifact URI (``.../artifacts/sha256/<digest>``)."""
    try:
        _, digest = stores.split_artifact_uri(artifact_uri)
    except (StoreError, artifacts.ArtifactError) as error:
        raise EvidenceError(f"--artifact: {error}") from error
    return VersionRecord(None, None, None, {}, {}, artifact_uri, digest)


def add_version_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that name one Model version: MODEL [--version] [-n] from the cluster, or --artifact."""
    parser.add_argument("model", nargs="?", help="the Model's name (omit with --artifact)")
    parser.add_argument("--version", type=int, help="version number (default: the champion)")
    parser.add_argument("--namespace", "-n", help="the Model's namespace (default: the kubeconfig's)")
    parser.add_argument("--artifact", help="offline: the artifact URI (.../artifacts/sha256/<digest>)")


def resolve_version(args: argparse.Namespace) -> tuple[VersionRecord, cluster_module.Cluster | None]:
    """The version :func:`add_version_arguments` names, and the cluster client when it came from one."""
    if args.artifact is not None:
        if args.model is not None:
            raise EvidenceError("give a MODEL name or --artifact, not both")
        return offline_version(args.artifact), None
    if args.model is None:
        raise EvidenceError("give a MODEL name (read from the cluster) or --artifact URI")
    kube = cluster_module.Cluster.from_environment()
    return read_version(kube, args.namespace or kube.namespace, args.model, args.version), kube


def open_artifact(
    uri: str, digest: str, store: str | None, cache_dir: pathlib.Path
) -> artifacts.VerifiedArtifact:
    """The verified artifact ``digest``: from ``store`` when given (the same store seen from this
    machine, e.g. a local copy of the claim), else from where ``uri`` says it is."""
    try:
        location = store if store is not None else stores.split_artifact_uri(uri)[0]
        return stores.open_store(location).fetch(digest, cache_dir)
    except (StoreError, artifacts.ArtifactError, OSError) as error:
        where = store or uri
        raise EvidenceError(
            f"artifact sha256:{digest} cannot be opened and verified from {where}: {error}"
        ) from error


def read_json(artifact: artifacts.VerifiedArtifact, name: str) -> Obj:
    """One of the artifact's JSON files, re-checked against its digest as it is read."""
    try:
        document: Obj = json.loads(artifact.read(name))
    except (artifacts.ArtifactError, OSError, ValueError) as error:
        raise EvidenceError(f"artifact sha256:{artifact.digest}: cannot read {name}: {error}") from error
    return document


def deployments_of(cluster: cluster_module.Cluster, namespace: str, model: str) -> list[Obj]:
    """The mlsteward Deployments in ``namespace`` that serve ``model`` (by spec.modelRef.name)."""
    try:
        items = cluster.list_items(cluster_module.resource_path("deployments", namespace))
    except cluster_module.ClusterError as error:
        raise EvidenceError(f"cannot list Deployments in {namespace}: {error.message}") from error
    return [d for d in items if ((d.get("spec") or {}).get("modelRef") or {}).get("name") == model]


def approvals_of(cluster: cluster_module.Cluster, namespace: str, digest: str) -> list[Obj]:
    """The Approval objects in ``namespace`` for the artifact ``digest``; none when unreadable."""
    try:
        items = cluster.list_items(cluster_module.resource_path("approvals", namespace))
    except cluster_module.ClusterError:
        return []
    return [a for a in items if (a.get("spec") or {}).get("digest") == digest]


def monitors_of(cluster: cluster_module.Cluster, namespace: str, deployments: list[str]) -> list[Obj]:
    """The Monitors in ``namespace`` watching any of ``deployments``; none when they cannot be read."""
    try:
        items = cluster.list_items(cluster_module.resource_path("monitors", namespace))
    except cluster_module.ClusterError:
        return []
    wanted = set(deployments)
    return [m for m in items if _watched(m) in wanted]


def _watched(monitor: Obj) -> str | None:
    spec = monitor.get("spec") or {}
    ref = spec.get("deploymentRef") or spec.get("deployment")
    if isinstance(ref, dict):
        return str(ref.get("name")) if ref.get("name") else None
    return str(ref) if ref else None
