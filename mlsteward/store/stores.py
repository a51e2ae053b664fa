"""One interface over the artifact stores: a local/PVC directory or an S3-compatible bucket.

``open_store(location)`` picks the implementation from the location: an absolute path or
``file://`` URI is a local store, ``s3://bucket/prefix`` an object store configured from
the environment (see ``mlsteward.store.s3``).
"""

from __future__ import annotations

import os
import pathlib
import urllib.parse
from collections.abc import Mapping
from typing import Protocol

from mlsteward.store import artifacts, cleanup, s3
from mlsteward.store.errors import StoreError


class ArtifactStore(Protocol):
    """Write, check and fetch content-addressed artifacts."""

    location: str

    def put(self, files: Mapping[str, bytes | pathlib.Path]) -> artifacts.ArtifactRef:
        """Write one artifact atomically; return its digest and URI."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether a complete artifact with this digest is in the store."""
        ...

    def fetch(self, digest: str, cache_dir: pathlib.Path) -> artifacts.VerifiedArtifact:
        """A verified local copy (the artifact itself for local stores)."""
        ...

    def read(self, digest: str, name: str) -> bytes:
        """One file of the artifact, verified against the manifest and the digest."""
        ...


class LocalArtifactStore:
    """Artifacts in a directory: a PersistentVolumeClaim mount in a cluster, any folder on a laptop."""

    def __init__(self, root: pathlib.Path, abandoned_after_s: float = cleanup.ABANDONED_AFTER_S) -> None:
        self.root = root
        self.location = root.resolve().as_uri()
        self.abandoned_after_s = abandoned_after_s

    def put(self, files: Mapping[str, bytes | pathlib.Path]) -> artifacts.ArtifactRef:
        ref = artifacts.write_artifact(self.root, files)
        self.collect_abandoned()
        return ref

    def collect_abandoned(self, abandoned_after_s: float | None = None) -> list[str]:
        """Remove staging directories of writers killed midway (mlsteward.store.cleanup)."""
        age = self.abandoned_after_s if abandoned_after_s is None else abandoned_after_s
        try:
            return cleanup.collect_staging(self.root / "artifacts" / ".staging", age)
        except OSError:  # only space is at stake: the artifact is written
            return []

    def exists(self, digest: str) -> bool:
        try:
            artifacts.open_artifact_in_store(self.root, digest)
        except artifacts.ArtifactError:
            return False
        return True

    def fetch(self, digest: str, cache_dir: pathlib.Path) -> artifacts.VerifiedArtifact:
        # Already local: verify in place instead of copying.
        return artifacts.open_artifact_in_store(self.root, digest)

    def read(self, digest: str, name: str) -> bytes:
        return artifacts.open_artifact_in_store(self.root, digest).read(name)


def open_store(location: str, env: Mapping[str, str] | None = None) -> ArtifactStore:
    """The store at ``location``: ``/abs/path``, ``file:///abs/path`` or ``s3://bucket/prefix``."""
    env = os.environ if env is None else env
    if location.startswith("s3://"):
        return s3.S3ArtifactStore(location, s3.S3Settings.from_environment(env))
    if location.startswith("file://"):
        return LocalArtifactStore(pathlib.Path(urllib.parse.urlparse(location).path), s3.abandoned_after(env))
    if location.startswith("/"):
        return LocalArtifactStore(pathlib.Path(location), s3.abandoned_after(env))
    raise StoreError(
        "InvalidLocation", f"unsupported store location {location!r}: use /path, file:// or s3://"
    )


def split_artifact_uri(uri: str) -> tuple[str, str]:
    """An artifact URI -> (store location, digest), e.g. ``s3://b/p/artifacts/sha256/<d>``."""
    head, marker, digest = uri.rstrip("/").rpartition("/artifacts/sha256/")
    if not marker or not head:
        raise StoreError("InvalidLocation", f"not an artifact URI: {uri!r}")
    artifacts.artifact_dir(pathlib.Path("."), digest)  # validates the digest
    return head, digest
