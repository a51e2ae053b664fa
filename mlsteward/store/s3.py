"""Artifacts and datasets in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, ...).

Layout under ``s3://<bucket>/<prefix>/artifacts/``: ``objects/<upload-id>/<file>`` holds the
files of one upload, streamed once with their sha256 computed on the way (see
``mlsteward.store.transfers``), and ``sha256/<digest>/manifest.json`` (the same manifest as
the local store) is written *last*, naming the upload's folder in its metadata. Readers treat
an artifact as present only when its manifest exists and every listed object matches, so an
interrupted upload never looks like a finished artifact.

Connection settings come from the environment, which the operator fills from a Kubernetes
Secret: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` (default us-east-1),
``MLSTEWARD_S3_ENDPOINT_URL`` (for MinIO and other S3-compatible servers) and
``MLSTEWARD_S3_ADDRESSING_STYLE`` (``path`` by default when an endpoint is set).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import pathlib
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mlsteward.store import artifacts, cleanup, transfers
from mlsteward.store.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger("mlsteward.store.s3")

_CHUNK = 1 << 20
_OBJECTS_METADATA = cleanup.OBJECTS_METADATA


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
    abandoned_after_s: float = cleanup.ABANDONED_AFTER_S
    """Age after which an unfinished upload's folder is removed (mlsteward.store.cleanup)."""

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> S3Settings:
        endpoint = env.get("MLSTEWARD_S3_ENDPOINT_URL") or None
        return cls(
            endpoint_url=endpoint,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            addressing_style=env.get("MLSTEWARD_S3_ADDRESSING_STYLE") or ("path" if endpoint else "auto"),
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            abandoned_after_s=abandoned_after(env),
        )


def abandoned_after(env: Mapping[str, str]) -> float:
    """``MLSTEWARD_STORE_ABANDONED_AFTER_S`` (seconds, default one hour), checked."""
    text = env.get("MLSTEWARD_STORE_ABANDONED_AFTER_S") or ""
    if not text:
        return cleanup.ABANDONED_AFTER_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise StoreError(
            "InvalidSetting",
            f"MLSTEWARD_STORE_ABANDONED_AFTER_S must be a number of seconds >= 0, got {text!r}",
        )
    return value


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
        max_pool_connections=transfers.WORKERS + 2,
        read_timeout=settings.read_timeout_s,
        # No payload signing: botocore would hash every request body with sha256 for the
        # signature (always over http, and over https unless a checksum header is sent), a
        # second pass over every byte besides the sha256 we compute and verify on every read
        # (bench/store: 1.10x boto3's upload time with it). Small objects and manifests carry
        # ChecksumSHA256, which the server verifies; TLS protects bodies on https endpoints.
        s3={  # type: ignore[arg-type]  # addressing_style is a Literal in the stubs
            "addressing_style": settings.addressing_style,
            "payload_signing_enabled": False,
        },
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


_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class S3ArtifactStore:
    """Content-addressed artifacts under one bucket prefix.

    ``put`` streams each file once into ``<prefix>/artifacts/objects/<upload-id>/<file>``,
    hashing while uploading, and then writes ``<prefix>/artifacts/sha256/<digest>/manifest.json``
    last, with the upload's folder in the manifest object's metadata. Until that manifest
    exists the upload is invisible; a killed upload leaves only unreferenced objects (and
    perhaps an incomplete multipart upload), which a later ``put`` removes once they are
    older than ``abandoned_after_s`` (mlsteward.store.cleanup).
    """

    def __init__(self, location: str, settings: S3Settings, client: S3Client | None = None) -> None:
        self.bucket, self.prefix = parse_s3_uri(location)
        self.location = location.rstrip("/")
        self._client = client or make_client(settings)
        self.abandoned_after_s = settings.abandoned_after_s

    def _join(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _key(self, digest: str, name: str) -> str:
        artifacts.artifact_dir(pathlib.Path("."), digest)  # validates the digest's form
        return self._join("artifacts", "sha256", digest, name)

    def uri(self, digest: str) -> str:
        return f"s3://{self.bucket}/{self._key(digest, '')}".rstrip("/")

    def put(self, files: Mapping[str, bytes | pathlib.Path]) -> artifacts.ArtifactRef:
        """Upload ``files`` as one artifact; the manifest goes last. Returns its reference."""
        if not files:
            raise artifacts.ArtifactError("an artifact needs at least one file")
        for name in files:
            if not artifacts.valid_file_name(name):
                raise artifacts.ArtifactError(f"invalid artifact file name {name!r}")
        # Collecting leftovers lists the bucket (about 30 ms on a local MinIO with 20
        # artifacts, a tenth of a 50 MB upload), so it runs beside the upload, not after it.
        # It touches only folders idle for abandoned_after_s, never this upload's.
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="s3-cleanup") as cleaner:
            cleaner.submit(self.collect_abandoned)
            return self._upload(files)

    def _upload(self, files: Mapping[str, bytes | pathlib.Path]) -> artifacts.ArtifactRef:
        upload = uuid.uuid4().hex
        folder = self._join("artifacts", "objects", upload)
        digests: dict[str, str] = {}
        for name, content in sorted(files.items()):
            key = f"{folder}/{name}"
            try:
                digests[name], _ = transfers.upload_hashing(self._client, self.bucket, key, content)
            except Exception as error:
                self._delete(f"{folder}/{done}" for done in digests)  # no manifest names them
                raise describe_failure(error, f"upload of s3://{self.bucket}/{key}") from error
        manifest = artifacts.manifest_bytes(digests)
        digest = artifacts.sha256_bytes(manifest)
        if self.exists(digest):
            # Same content already stored (content addressing): keep that copy, drop this one.
            self._delete(f"{folder}/{name}" for name in digests)
        else:
            # The marker first, so that a listing tells which folder the manifest names.
            marker = self._key(digest, f"{cleanup.MARKER_PREFIX}{upload}")
            key = self._key(digest, artifacts.MANIFEST_NAME)
            try:
                self._client.put_object(Bucket=self.bucket, Key=marker, Body=b"")
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=manifest,
                    ChecksumSHA256=transfers.sha256_base64(digest),
                    Metadata={transfers.SHA256_METADATA: digest, _OBJECTS_METADATA: f"objects/{upload}"},
                )
            except Exception as error:
                raise describe_failure(error, f"upload of s3://{self.bucket}/{key}") from error
        return artifacts.ArtifactRef(digest=digest, uri=self.uri(digest))

    def collect_abandoned(self, abandoned_after_s: float | None = None) -> list[str]:
        """Remove the folders of uploads killed midway (mlsteward.store.cleanup); never fails."""
        age = self.abandoned_after_s if abandoned_after_s is None else abandoned_after_s
        try:
            return cleanup.collect_uploads(self._client, self.bucket, self._join("artifacts"), age)
        except Exception as error:  # only space is at stake: the artifact is written
            log.warning("could not collect abandoned uploads in %s: %s", self.location, error)
            return []

    def _delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            with contextlib.suppress(Exception):  # only space is lost if this fails
                self._client.delete_object(Bucket=self.bucket, Key=key)

    def _manifest(self, digest: str) -> tuple[bytes, dict[str, str], str] | None:
        """(manifest bytes, file -> sha256, the key folder of the files), or None if absent."""
        key = self._key(digest, artifacts.MANIFEST_NAME)
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
            body = answer["Body"].read()
        except Exception as error:
            failure = describe_failure(error, f"reading s3://{self.bucket}/{key}")
            if failure.reason == "ObjectMissing":
                return None
            raise failure from error
        if artifacts.sha256_bytes(body) != digest:
            raise StoreError(
                "DigestMismatch", f"s3://{self.bucket}/{key} does not match the artifact digest {digest}"
            )
        listed = artifacts.parse_manifest(body, f"s3://{self.bucket}/{key}")
        objects = answer.get("Metadata", {}).get(_OBJECTS_METADATA, "")
        upload = objects.removeprefix("objects/")
        if objects and (not objects.startswith("objects/") or not _UPLOAD_ID.match(upload)):
            raise StoreError(
                "DigestMismatch", f"s3://{self.bucket}/{key}: malformed objects folder {objects!r}"
            )
        # Artifacts written before uploads were streamed keep their files beside the manifest.
        folder = self._join("artifacts", "objects", upload) if objects else self._key(digest, "").rstrip("/")
        return body, listed, folder

    def exists(self, digest: str) -> bool:
        """True when the manifest matches the digest and every listed object is present.

        Checks metadata, not contents (for the operator's training cache); ``fetch`` verifies
        every byte before use.
        """
        found = self._manifest(digest)
        if found is None:
            return False
        _, listed, folder = found
        for name, sha256 in listed.items():
            key = f"{folder}/{name}"
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=key)
            except Exception as error:
                failure = describe_failure(error, f"checking s3://{self.bucket}/{key}")
                if failure.reason == "ObjectMissing":
                    return False
                raise failure from error
            recorded = head.get("Metadata", {}).get(transfers.SHA256_METADATA)
            if recorded is not None and recorded != sha256:
                return False
        return True

    def fetch(self, digest: str, cache_dir: pathlib.Path) -> artifacts.VerifiedArtifact:
        """A verified local copy of the artifact, downloaded once into ``cache_dir``.

        Every object is hashed while it downloads; one whose sha256 differs from the manifest
        is refused by name and nothing is cached.
        """
        local = artifacts.artifact_dir(cache_dir, digest)
        if (local / artifacts.MANIFEST_NAME).is_file():
            try:
                return artifacts.open_artifact(local, digest)
            except artifacts.ArtifactError:
                shutil.rmtree(local, ignore_errors=True)  # a damaged cache entry is fetched again
        found = self._manifest(digest)
        if found is None:
            raise StoreError(
                "ObjectMissing", f"no artifact {digest} in {self.location} (its manifest is missing)"
            )
        manifest, listed, folder = found
        staging_parent = cache_dir / "artifacts" / ".staging"
        staging_parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix="fetch-", dir=staging_parent))
        try:
            for name, expected in sorted(listed.items()):
                self._download_verified(f"{folder}/{name}", staging / name, expected)
            (staging / artifacts.MANIFEST_NAME).write_bytes(manifest)
            staging.chmod(0o755)
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, local)
            except OSError:
                if not (local / artifacts.MANIFEST_NAME).is_file():
                    raise
                shutil.rmtree(staging, ignore_errors=True)
                return artifacts.open_artifact(local, digest)  # another process fetched it first
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        # Every byte was hashed on the way in: no second pass.
        return artifacts.VerifiedArtifact(digest=digest, path=local, files=listed)

    def read(self, digest: str, name: str) -> bytes:
        """One file of the artifact, verified against the manifest, without fetching the rest."""
        found = self._manifest(digest)
        if found is None:
            raise StoreError(
                "ObjectMissing", f"no artifact {digest} in {self.location} (its manifest is missing)"
            )
        _, listed, folder = found
        if name not in listed:
            raise StoreError("ObjectMissing", f"artifact {digest} in {self.location} lists no {name}")
        key = f"{folder}/{name}"
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as error:
            raise describe_failure(error, f"reading s3://{self.bucket}/{key}") from error
        if artifacts.sha256_bytes(body) != listed[name]:
            raise StoreError(
                "DigestMismatch",
                f"s3://{self.bucket}/{key} does not match its sha256 {listed[name]}: refusing it",
            )
        return bytes(body)

    def _download_verified(self, key: str, target: pathlib.Path, expected: str) -> None:
        try:
            actual = transfers.download_hashing(self._client, self.bucket, key, target)
        except Exception as error:
            raise describe_failure(error, f"download of s3://{self.bucket}/{key}") from error
        if actual != expected:
            raise StoreError(
                "DigestMismatch",
                f"s3://{self.bucket}/{key} has sha256 {actual}, the manifest says {expected}: refusing it",
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
