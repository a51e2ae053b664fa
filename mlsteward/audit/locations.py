"""Where decision-log segments live: a local/PVC directory or an S3-compatible bucket.

Layout under the store (``/path``, ``file:///path`` or ``s3://bucket/prefix``)::

    decisions/<namespace>/<deployment>/<chain>/segments/<segment name>
    decisions/<namespace>/<deployment>/<chain>/deletions/<last deleted seq>.json

Objects are written once and never rewritten: the local store writes a temporary file, fsyncs
it and links it to its final name (which fails if the name exists); the S3 store uploads with
an S3-verified SHA-256 checksum. Credentials and endpoint come from the environment, as for
artifacts (docs/store.md).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import tempfile
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from mlsteward.store import s3
from mlsteward.store.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


class Location(Protocol):
    """Write-once objects by key (``/``-separated), listable by prefix."""

    uri: str

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (relative to it), sorted."""
        ...

    def delete(self, key: str) -> None: ...


def check_part(what: str, value: str) -> str:
    """A namespace, Deployment or chain name that is safe as one path segment."""
    if not _PART.match(value):
        raise ValueError(f"{what} {value!r} must be letters, digits, '.', '_' or '-' (1-253 chars)")
    return value


def chain_prefix(namespace: str, deployment: str, chain: str) -> str:
    return "/".join(
        [
            "decisions",
            check_part("namespace", namespace),
            check_part("deployment", deployment),
            check_part("chain", chain),
        ]
    )


def deployment_prefix(namespace: str, deployment: str) -> str:
    return "/".join(["decisions", check_part("namespace", namespace), check_part("deployment", deployment)])


class LocalLocation:
    """Segments in a directory (a PersistentVolumeClaim mount in a cluster)."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.uri = root.resolve().as_uri()

    def put(self, key: str, data: bytes) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".partial-", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as sink:
                sink.write(data)
                sink.flush()
                os.fsync(sink.fileno())
            os.chmod(temporary, 0o644)
            os.link(temporary, target)  # fails when the name exists: segments are never rewritten
        except FileExistsError as error:
            raise StoreError("StoreFailed", f"{target} exists already; segments are write-once") from error
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        with contextlib.suppress(OSError):
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def get(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError as error:
            raise StoreError("ObjectMissing", f"{self.root / key}: no such segment") from error

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(
            str(path.relative_to(base))
            for path in base.rglob("*")
            if path.is_file() and not path.name.startswith(".partial-")
        )

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / key).unlink()


class S3Location:
    """Segments under one bucket prefix."""

    def __init__(self, uri: str, settings: s3.S3Settings, client: S3Client | None = None) -> None:
        self.bucket, self.prefix = s3.parse_s3_uri(uri)
        self.uri = uri.rstrip("/")
        self._client = client or s3.make_client(settings)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        import base64
        import hashlib

        full = self._key(key)
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=full,
                Body=data,
                ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
            )
        except Exception as error:
            raise s3.describe_failure(error, f"upload of s3://{self.bucket}/{full}") from error

    def get(self, key: str) -> bytes:
        full = self._key(key)
        try:
            return self._client.get_object(Bucket=self.bucket, Key=full)["Body"].read()
        except Exception as error:
            raise s3.describe_failure(error, f"reading s3://{self.bucket}/{full}") from error

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix).rstrip("/") + "/"
        keys: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            ):
                keys.extend(item["Key"][len(full) :] for item in page.get("Contents", []))
        except Exception as error:
            raise s3.describe_failure(error, f"listing s3://{self.bucket}/{full}") from error
        return sorted(keys)

    def delete(self, key: str) -> None:
        full = self._key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full)
        except Exception as error:
            raise s3.describe_failure(error, f"deleting s3://{self.bucket}/{full}") from error


def open_location(uri: str, env: Mapping[str, str] | None = None) -> Location:
    """The location at ``/abs/path``, ``file:///abs/path`` or ``s3://bucket/prefix``."""
    if uri.startswith("s3://"):
        return S3Location(uri, s3.S3Settings.from_environment(os.environ if env is None else env))
    if uri.startswith("file://"):
        return LocalLocation(pathlib.Path(urllib.parse.urlparse(uri).path))
    if uri.startswith("/"):
        return LocalLocation(pathlib.Path(uri))
    raise StoreError("InvalidLocation", f"unsupported store location {uri!r}: use /path, file:// or s3://")
