"""Content-addressed model artifacts on a local or PVC-mounted path.

An artifact is a directory of files plus ``manifest.json``, a canonical JSON document that
lists each file's sha256. The artifact's digest is the sha256 of the manifest's bytes, and
its directory is ``<root>/artifacts/sha256/<digest>``. Writers assemble everything in a
temporary directory under the same root and rename it into place, so a reader never sees a
half-written artifact; readers verify the manifest digest and every file digest before use.

Usage::

    ref = write_artifact(root, {"model.onnx": onnx_bytes, "profile.json": profile_bytes})
    files = open_artifact(ref.path, ref.digest)  # raises ArtifactError on any mismatch
    model_bytes = files.read("model.onnx")
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Mapping

import orjson

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "mlsteward.io/artifact/v1"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = 1 << 20


class ArtifactError(Exception):
    """An artifact is missing, incomplete or does not match its digest."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(document: object) -> bytes:
    """Deterministic JSON bytes: sorted keys, no insignificant whitespace, trailing newline."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def artifact_dir(root: pathlib.Path, digest: str) -> pathlib.Path:
    if not _DIGEST.match(digest):
        raise ArtifactError(f"malformed artifact digest {digest!r}: expected 64 lowercase hex digits")
    return root / "artifacts" / "sha256" / digest


@dataclasses.dataclass(frozen=True)
class ArtifactRef:
    """Where a written artifact lives and the digest that identifies it."""

    digest: str
    uri: str
    """``file:///...`` for the local store, ``s3://bucket/...`` for object storage."""
    path: pathlib.Path | None = None
    """The artifact's directory, for local stores."""


def valid_file_name(name: str) -> bool:
    return bool(_FILE_NAME.match(name)) and name != MANIFEST_NAME


def manifest_bytes(digests: Mapping[str, str]) -> bytes:
    """The canonical manifest listing each file's sha256; its own sha256 is the artifact digest."""
    return canonical_json({"schema": MANIFEST_SCHEMA, "files": dict(sorted(digests.items()))})


def parse_manifest(manifest: bytes, where: str) -> dict[str, str]:
    """File name -> sha256 from a manifest's bytes; ArtifactError when it is not one."""
    try:
        document = orjson.loads(manifest)
        listed = document["files"]
        if document.get("schema") != MANIFEST_SCHEMA or not isinstance(listed, dict):
            raise ValueError("unexpected schema")
        if not all(isinstance(v, str) and _DIGEST.match(v) and valid_file_name(k) for k, v in listed.items()):
            raise ValueError("bad entry")
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError) as error:
        raise ArtifactError(f"{where}: manifest is not a {MANIFEST_SCHEMA} document") from error
    return {str(k): str(v) for k, v in listed.items()}


@dataclasses.dataclass(frozen=True)
class VerifiedArtifact:
    """An artifact directory whose every file matched the manifest when opened."""

    digest: str
    path: pathlib.Path
    files: Mapping[str, str]

    def file(self, name: str) -> pathlib.Path:
        if name not in self.files:
            raise ArtifactError(f"artifact {self.digest} has no file {name!r}")
        return self.path / name

    def read(self, name: str) -> bytes:
        """Read one file and check its digest again, so a change after opening is caught."""
        data = self.file(name).read_bytes()
        if sha256_bytes(data) != self.files[name]:
            raise ArtifactError(f"artifact {self.digest}: {name} changed after it was verified")
        return data


def write_artifact(root: pathlib.Path, files: Mapping[str, bytes | pathlib.Path]) -> ArtifactRef:
    """Write ``files`` as one artifact under ``root`` atomically; return its reference.

    Writing the same content twice yields the same digest and leaves one copy.
    """
    if not files:
        raise ArtifactError("an artifact needs at least one file")
    for name in files:
        if not valid_file_name(name):
            raise ArtifactError(f"invalid artifact file name {name!r}")
    staging_parent = root / "artifacts" / ".staging"
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix="artifact-", dir=staging_parent))
    try:
        digests: dict[str, str] = {}
        for name, content in sorted(files.items()):
            target = staging / name
            if isinstance(content, pathlib.Path):
                shutil.copyfile(content, target)
            else:
                target.write_bytes(content)
            digests[name] = sha256_file(target)
            _fsync(target)
        manifest = manifest_bytes(digests)
        (staging / MANIFEST_NAME).write_bytes(manifest)
        _fsync(staging / MANIFEST_NAME)
        digest = sha256_bytes(manifest)
        final = artifact_dir(root, digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.chmod(0o755)
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / MANIFEST_NAME).is_file():
                raise
            # Same content already present (content addressing): keep the existing copy.
            shutil.rmtree(staging, ignore_errors=True)
        _fsync_dir(final.parent)
        return ArtifactRef(digest=digest, uri=final.resolve().as_uri(), path=final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def open_artifact(path: pathlib.Path, digest: str) -> VerifiedArtifact:
    """Verify the artifact at ``path`` against ``digest`` and every listed file; return it."""
    if not _DIGEST.match(digest):
        raise ArtifactError(f"malformed artifact digest {digest!r}: expected 64 lowercase hex digits")
    manifest_path = path / MANIFEST_NAME
    try:
        manifest = manifest_path.read_bytes()
    except FileNotFoundError as error:
        raise ArtifactError(f"no artifact at {path}: {MANIFEST_NAME} is missing") from error
    actual = sha256_bytes(manifest)
    if actual != digest:
        raise ArtifactError(f"artifact at {path}: manifest digest is {actual}, expected {digest}")
    listed = parse_manifest(manifest, f"artifact at {path}")
    for name, expected in listed.items():
        file_path = path / name
        if not file_path.is_file():
            raise ArtifactError(f"artifact {digest}: listed file {name} is missing")
        if sha256_file(file_path) != expected:
            raise ArtifactError(f"artifact {digest}: {name} does not match its sha256 {expected}")
    return VerifiedArtifact(digest=digest, path=path, files=listed)


def open_artifact_in_store(root: pathlib.Path, digest: str) -> VerifiedArtifact:
    return open_artifact(artifact_dir(root, digest), digest)


def _fsync(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: pathlib.Path) -> None:
    # Some file systems refuse fsync on directories; the rename is atomic all the same.
    with contextlib.suppress(OSError):
        _fsync(path)
