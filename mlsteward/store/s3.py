"""Artifacts and datasets in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, ...).

Layout: ``s3://<bucket>/<prefix>/artifacts/sha256/<digest>/<file>`` with the same
``manifest.json`` as the local store. Every file's sha256 is known before the upload, so the
files go straight to their final keys (no server-side copy of large objects), each uploaded
with an S3-verified checksum (SHA-256 for small objects, CRC32 per part for multipart ones)
and its sha256 in the object's metadata, and the manifest is written *last*: readers treat an
artifact as present only when its manifest exists and every listed object matches, so an
interrupted upload never looks like a finished artifact.

Connection settings come from the environment, which the operator fills from a Kubernetes
Secret: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` (default us-east-1),
``MLSTEWARD_S3_ENDPOINT_URL`` (for MinIO and other S3-compatible servers) and
``MLSTEWARD_S3_ADDRESSING_STYLE`` (``path`` by default when an endpoint is set).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mlsteward.store import artifacts
from mlsteward.store.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

_CHUNK = 1 << 20
_SINGLE_PUT_LIMIT = 8 << 20
_SHA256_METADATA = "sha256"


@dataclasses.dataclass(frozen=True)
class S3Settings:
    """How to reach the object store."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    addressing_style: str = "auto"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    max_attempts: int = 4
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> S3Settings:
        endpoint = env.get("MLSTEWARD_S3_ENDPOINT_URL") or None
        return cls(
            endpoint_url=endpoint,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            addressing_style=env.get("MLSTEWARD_S3_ADDRESSING_STYLE") or ("path" if endpoint else "auto"),
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, "some/prefix")."""
    if not uri.startswith("s3://"):
        raise StoreError("InvalidLocation", f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StoreError("InvalidLocation", f"no bucket in {uri!r}")
    return bucket, key.strip("/")


def make_client(settings: S3Settings) -> S3Client:
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.region,
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        s3={"addressing_style": settings.addressing_style},  # type: ignore[arg-type]  # a Literal in the stubs
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        config=config,
    )
    return client


def describe_failure(error: Exception, what: str) -> StoreError:
    """Turn a botocore failure into a StoreError whose message says what went wrong and where."""
    from botocore import exceptions

    if isinstance(error, StoreError):
        return error
    if isinstance(error, exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}:
            return StoreError(
                "CredentialsRejected", f"{what}: the object store rejected the credentials ({code})"
            )
        if code == "NoSuchBucket":
            return StoreError("BucketMissing", f"{what}: the bucket does not exist")
        if code in {"NoSuchKey", "NotFound", "404"} or status == 404:
            return StoreError("ObjectMissing", f"{what}: no such object")
        if code in {"AccessDenied", "403"} or status == 403:
            return StoreError("AccessDenied", f"{what}: access denied")
        if code in {"BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest"}:
            return StoreError("DigestMismatch", f"{what}: the store refused the upload's checksum ({code})")
        return StoreError("StoreFailed", f"{what}: {code or status}: {error}")
    if isinstance(
        error,
        exceptions.EndpointConnectionError
        | exceptions.ConnectTimeoutError
        | exceptions.ReadTimeoutError
        | exceptions.ConnectionClosedError,
    ):
        return StoreError(
            "Unreachable", f"{what}: the object store could not be reached after retries: {error}"
        )
    if isinstance(error, exceptions.NoCredentialsError):
        return StoreError("CredentialsRejected", f"{what}: no credentials configured (AWS_ACCESS_KEY_ID)")
    return StoreError("StoreFailed", f"{what}: {error}")


def _sha256_base64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class S3ArtifactStore:
    """Content-addressed artifacts under one bucket prefix."""

    def __init__(self, location: str, settings: S3Settings, client: S3Client | None = None) -> None:
        self.bucket, self.prefix = parse_s3_uri(location)
        self.location = location.rstrip("/")
        self._client = client or make_client(settings)

    def _key(self, digest: str, name: str) -> str:
        artifacts.artifact_dir(pathlib.Path("."), digest)  # validates the digest's form
        parts = [self.prefix, "artifacts", "sha256", digest, name]
        return "/".join(p for p in parts if p)

    def uri(self, digest: str) -> str:
        return f"s3://{self.bucket}/{self._key(digest, '')}".rstrip("/")

    def put(self, files: Mapping[str, bytes | pathlib.Path]) -> artifacts.ArtifactRef:
        """Upload ``files`` as one artifact; the manifest goes last. Returns its reference."""
        digests: dict[str, str] = {}
        for name, content in files.items():
            if not artifacts.valid_file_name(name):
                raise artifacts.ArtifactError(f"invalid artifact file name {name!r}")
            digests[name] = (
                artifacts.sha256_file(content)
                if isinstance(content, pathlib.Path)
                else artifacts.sha256_bytes(content)
            )
        manifest = artifacts.manifest_bytes(digests)
        digest = artifacts.sha256_bytes(manifest)
        if not self.exists(digest):
            for name, content in sorted(files.items()):
                self._upload(self._key(digest, name), content, digests[name])
            self._upload(self._key(digest, artifacts.MANIFEST_NAME), manifest, digest)
        return artifacts.ArtifactRef(digest=digest, uri=self.uri(digest))

    def _upload(self, key: str, content: bytes | pathlib.Path, sha256: str) -> None:
        what = f"upload of s3://{self.bucket}/{key}"
        try:
            size = len(content) if isinstance(content, bytes) else content.stat().st_size
            if size <= _SINGLE_PUT_LIMIT:
                body = content if isinstance(content, bytes) else content.read_bytes()
                # S3 recomputes the SHA-256 and refuses the object if it differs from ours.
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ChecksumSHA256=_sha256_base64(sha256),
                    Metadata={_SHA256_METADATA: sha256},
                )
            else:
                # Large objects: parallel multipart with CRC32 per part for transport integrity
                # (a per-part SHA-256 on top of our own hash cost ~40% of upload time); the
                # end-to-end check is the sha256 that every fetch verifies.
                extra = {"ChecksumAlgorithm": "CRC32", "Metadata": {_SHA256_METADATA: sha256}}
                if isinstance(content, bytes):
                    self._client.upload_fileobj(io.BytesIO(content), self.bucket, key, ExtraArgs=extra)
                else:
                    self._client.upload_file(str(content), self.bucket, key, ExtraArgs=extra)
        except Exception as error:
            raise describe_failure(error, what) from error

    def _manifest(self, digest: str) -> dict[str, str] | None:
        key = self._key(digest, artifacts.MANIFEST_NAME)
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as error:
            failure = describe_failure(error, f"reading s3://{self.bucket}/{key}")
            if failure.reason == "ObjectMissing":
                return None
            raise failure from error
        if artifacts.sha256_bytes(body) != digest:
            raise StoreError(
                "DigestMismatch", f"s3://{self.bucket}/{key} does not match the artifact digest {digest}"
            )
        return artifacts.parse_manifest(body, f"s3://{self.bucket}/{key}")

    def exists(self, digest: str) -> bool:
        """True when the manifest exists and every listed object is there with the recorded sha256.

        Checks object metadata, not contents; ``fetch`` verifies every byte before use.
        """
        listed = self._manifest(digest)
        if listed is None:
            return False
        for name, sha256 in listed.items():
            key = self._key(digest, name)
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=key)
            except Exception as error:
                failure = describe_failure(error, f"checking s3://{self.bucket}/{key}")
                if failure.reason == "ObjectMissing":
                    return False
                raise failure from error
            if head.get("Metadata", {}).get(_SHA256_METADATA) != sha256:
                return False
        return True

    def fetch(self, digest: str, cache_dir: pathlib.Path) -> artifacts.VerifiedArtifact:
        """A verified local copy of the artifact, downloaded once into ``cache_dir``."""
        local = artifacts.artifact_dir(cache_dir, digest)
        if (local / artifacts.MANIFEST_NAME).is_file():
            try:
                return artifacts.open_artifact(local, digest)
            except artifacts.ArtifactError:
                shutil.rmtree(local, ignore_errors=True)  # a damaged cache entry is fetched again
        listed = self._manifest(digest)
        if listed is None:
            raise StoreError(
                "ObjectMissing", f"no artifact {digest} in {self.location} (its manifest is missing)"
            )
        staging_parent = cache_dir / "artifacts" / ".staging"
        staging_parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix="fetch-", dir=staging_parent))
        try:
            for name, expected in sorted(listed.items()):
                self._download_verified(self._key(digest, name), staging / name, expected)
            (staging / artifacts.MANIFEST_NAME).write_bytes(artifacts.manifest_bytes(listed))
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, local)
            except OSError:
                if not (local / artifacts.MANIFEST_NAME).is_file():
                    raise
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return artifacts.open_artifact(local, digest)

    def _download_verified(self, key: str, target: pathlib.Path, expected: str) -> None:
        what = f"download of s3://{self.bucket}/{key}"
        digest = hashlib.sha256()
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with target.open("wb") as sink:
                for chunk in body.iter_chunks(_CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
        except Exception as error:
            raise describe_failure(error, what) from error
        if digest.hexdigest() != expected:
            raise StoreError(
                "DigestMismatch",
                f"s3://{self.bucket}/{key} has sha256 {digest.hexdigest()}, "
                f"the manifest says {expected}: refusing it",
            )


def stream_object(uri: str, settings: S3Settings, client: S3Client | None = None) -> Iterator[bytes]:
    """The bytes of one object, in chunks (for datasets: the caller hashes while reading)."""
    bucket, key = parse_s3_uri(uri)
    s3 = client or make_client(settings)
    try:
        body: Any = s3.get_object(Bucket=bucket, Key=key)["Body"]
        yield from body.iter_chunks(_CHUNK)
    except Exception as error:
        raise describe_failure(error, f"reading {uri}") from error
