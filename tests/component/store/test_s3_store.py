"""The S3 artifact store against a real MinIO: atomic, verified, with clear errors."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING

import pytest

from mlsteward.dev import minio
from mlsteward.store import artifacts, s3, stores, transfers
from mlsteward.store.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def _files() -> dict[str, bytes | pathlib.Path]:
    return {
        "model.onnx": b"\x08\x07" + os.urandom(4096),
        "profile.json": b'{"rows": 3}\n',
        "notes.txt": b"",  # an empty object has no byte range to ask for
    }


def test_an_artifact_round_trips_through_the_bucket_and_is_cached_locally(
    s3_settings: s3.S3Settings, bucket: str, cache_dir: pathlib.Path
) -> None:
    store = s3.S3ArtifactStore(f"s3://{bucket}/team-a", s3_settings)
    files = _files()
    ref = store.put(files)
    assert ref.uri == f"s3://{bucket}/team-a/artifacts/sha256/{ref.digest}"
    assert store.exists(ref.digest)
    fetched = store.fetch(ref.digest, cache_dir)
    assert fetched.read("model.onnx") == files["model.onnx"]
    assert fetched.read("notes.txt") == b""
    assert fetched.path == cache_dir / "artifacts" / "sha256" / ref.digest
    # A second fetch is served from the verified cache.
    assert store.fetch(ref.digest, cache_dir).path == fetched.path


def test_the_same_files_get_the_same_digest_in_the_bucket_and_on_disk(
    s3_settings: s3.S3Settings, bucket: str, tmp_path: pathlib.Path
) -> None:
    files = _files()
    in_bucket = s3.S3ArtifactStore(f"s3://{bucket}", s3_settings).put(files)
    on_disk = stores.LocalArtifactStore(tmp_path / "local").put(files)
    assert in_bucket.digest == on_disk.digest


def test_open_store_picks_the_implementation_from_the_location(
    minio_server: minio.MinioServer, bucket: str, tmp_path: pathlib.Path
) -> None:
    assert isinstance(stores.open_store(f"s3://{bucket}/p", minio_server.env()), s3.S3ArtifactStore)
    assert isinstance(stores.open_store(str(tmp_path)), stores.LocalArtifactStore)
    assert isinstance(stores.open_store(tmp_path.as_uri()), stores.LocalArtifactStore)
    with pytest.raises(StoreError, match="unsupported store location") as raised:
        stores.open_store("gs://bucket")
    assert raised.value.reason == "InvalidLocation"


def test_an_artifact_uri_splits_into_store_and_digest() -> None:
    assert stores.split_artifact_uri("s3://b/p/artifacts/sha256/" + "a" * 64) == ("s3://b/p", "a" * 64)
    with pytest.raises(StoreError):
        stores.split_artifact_uri("s3://b/p/model.onnx")


def test_a_corrupted_object_in_the_bucket_is_refused_with_its_name(
    s3_settings: s3.S3Settings, bucket: str, cache_dir: pathlib.Path
) -> None:
    store = s3.S3ArtifactStore(f"s3://{bucket}", s3_settings)
    files = _files()
    ref = store.put(files)
    client = s3.make_client(s3_settings)
    [key] = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=bucket, Prefix="artifacts/objects/")["Contents"]
        if o["Key"].endswith("/model.onnx")
    ]
    # Overwrite the object behind the store's back, keeping the recorded sha256 metadata.
    recorded = artifacts.sha256_bytes(files["model.onnx"])  # type: ignore[arg-type]
    client.put_object(Bucket=bucket, Key=key, Body=b"tampered", Metadata={"sha256": recorded})
    assert store.exists(ref.digest)  # metadata only: the bytes are checked by fetch
    with pytest.raises(StoreError, match=r"model\.onnx has sha256 .* refusing it") as raised:
        store.fetch(ref.digest, cache_dir)
    assert raised.value.reason == "DigestMismatch"
    assert not (cache_dir / "artifacts" / "sha256" / ref.digest).exists()


def test_a_multipart_object_round_trips_hashed_on_the_way_both_ways(
    s3_settings: s3.S3Settings, bucket: str, tmp_path: pathlib.Path, cache_dir: pathlib.Path
) -> None:
    big = tmp_path / "model.onnx"
    big.write_bytes(os.urandom(3 * transfers.PART_SIZE + 12345))
    store = s3.S3ArtifactStore(f"s3://{bucket}/big", s3_settings)
    ref = store.put({"model.onnx": big, "schema.json": b"{}"})
    client = s3.make_client(s3_settings)
    [key] = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=bucket, Prefix="big/artifacts/objects/")["Contents"]
        if o["Key"].endswith("/model.onnx")
    ]
    assert client.head_object(Bucket=bucket, Key=key, PartNumber=1)["PartsCount"] == 4
    fetched = store.fetch(ref.digest, cache_dir)
    assert artifacts.sha256_file(fetched.file("model.onnx")) == artifacts.sha256_file(big)
    # Uploading the same content again keeps one copy: the second upload's objects are dropped.
    assert store.put({"model.onnx": big, "schema.json": b"{}"}).digest == ref.digest
    listed = client.list_objects_v2(Bucket=bucket, Prefix="big/artifacts/objects/")["Contents"]
    assert len([o for o in listed if o["Key"].endswith("/model.onnx")]) == 1


def test_artifacts_with_files_beside_the_manifest_still_fetch(
    s3_settings: s3.S3Settings, bucket: str, cache_dir: pathlib.Path
) -> None:
    """The layout before uploads were streamed: no objects folder named in the manifest's metadata."""
    files = {"model.onnx": b"\x08\x07onnx", "schema.json": b"{}"}
    manifest = artifacts.manifest_bytes({k: artifacts.sha256_bytes(v) for k, v in files.items()})
    digest = artifacts.sha256_bytes(manifest)
    client = s3.make_client(s3_settings)
    for name, body in [*files.items(), ("manifest.json", manifest)]:
        client.put_object(Bucket=bucket, Key=f"old/artifacts/sha256/{digest}/{name}", Body=body)
    store = s3.S3ArtifactStore(f"s3://{bucket}/old", s3_settings)
    assert store.exists(digest)
    assert store.fetch(digest, cache_dir).read("model.onnx") == files["model.onnx"]


def test_a_digest_that_was_never_written_is_missing(
    s3_settings: s3.S3Settings, bucket: str, cache_dir: pathlib.Path
) -> None:
    store = s3.S3ArtifactStore(f"s3://{bucket}", s3_settings)
    assert not store.exists("b" * 64)
    with pytest.raises(StoreError, match="its manifest is missing") as raised:
        store.fetch("b" * 64, cache_dir)
    assert raised.value.reason == "ObjectMissing"


_UPLOADER = textwrap.dedent(
    """
    import os, pathlib, sys
    from mlsteward.store import s3
    big = pathlib.Path(sys.argv[2])
    store = s3.S3ArtifactStore(sys.argv[1], s3.S3Settings.from_environment(os.environ))
    print("uploading", flush=True)
    store.put({"a-small.json": b"{}", "model.onnx": big})
    print("done", flush=True)
    """
)


def test_an_upload_killed_midway_never_looks_like_an_artifact(
    minio_server: minio.MinioServer, s3_settings: s3.S3Settings, bucket: str, tmp_path: pathlib.Path
) -> None:
    big = tmp_path / "model.onnx"
    big.write_bytes(os.urandom(200 << 20))
    files: dict[str, bytes | pathlib.Path] = {"a-small.json": b"{}", "model.onnx": big}
    expected = artifacts.sha256_bytes(
        artifacts.manifest_bytes(
            {"a-small.json": artifacts.sha256_bytes(b"{}"), "model.onnx": artifacts.sha256_file(big)}
        )
    )
    uploader = subprocess.Popen(
        [sys.executable, "-c", _UPLOADER, f"s3://{bucket}", str(big)],
        env=dict(os.environ, **minio_server.env()),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert uploader.stdout is not None and uploader.stdout.readline().strip() == "uploading"
    client = s3.make_client(s3_settings)
    deadline = time.monotonic() + 60
    # Kill it once the first object landed and the large one is in flight.
    while time.monotonic() < deadline:
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        if any(o["Key"].endswith("a-small.json") for o in listed):
            break
        time.sleep(0.01)
    os.kill(uploader.pid, signal.SIGKILL)
    uploader.wait(10)
    store = s3.S3ArtifactStore(f"s3://{bucket}", s3_settings)
    assert not store.exists(expected)
    with pytest.raises(StoreError) as raised:
        store.fetch(expected, tmp_path / "cache")
    assert raised.value.reason == "ObjectMissing"
    # Retrying the upload completes the same artifact.
    assert store.put(files).digest == expected
    assert store.exists(expected)


def test_wrong_credentials_are_named_as_such(s3_settings: s3.S3Settings, bucket: str) -> None:
    wrong = dataclasses.replace(s3_settings, secret_access_key="not-the-secret")
    with pytest.raises(StoreError, match="rejected the credentials") as raised:
        s3.S3ArtifactStore(f"s3://{bucket}", wrong).put(_files())
    assert raised.value.reason == "CredentialsRejected"


def test_a_missing_bucket_is_named_as_such(s3_settings: s3.S3Settings) -> None:
    with pytest.raises(StoreError, match="bucket does not exist") as raised:
        s3.S3ArtifactStore("s3://no-such-bucket-here", s3_settings).put(_files())
    assert raised.value.reason == "BucketMissing"


def test_an_unreachable_endpoint_fails_after_bounded_retries(s3_settings: s3.S3Settings) -> None:
    from mlsteward.dev import controlplane

    closed = dataclasses.replace(
        s3_settings,
        endpoint_url=f"http://127.0.0.1:{controlplane.free_port()}",
        max_attempts=2,
        connect_timeout_s=1,
    )
    started = time.monotonic()
    with pytest.raises(StoreError, match="could not be reached") as raised:
        s3.S3ArtifactStore("s3://bucket", closed).exists("c" * 64)
    assert raised.value.reason == "Unreachable"
    assert time.monotonic() - started < 30


def test_a_dataset_object_streams_in_chunks(s3_settings: s3.S3Settings, bucket: str) -> None:
    payload = os.urandom(3 << 20)
    s3.make_client(s3_settings).put_object(Bucket=bucket, Key="data/credit.csv", Body=payload)
    chunks = list(s3.stream_object(f"s3://{bucket}/data/credit.csv", s3_settings))
    assert len(chunks) >= 3 and b"".join(chunks) == payload
    with pytest.raises(StoreError) as raised:
        list(s3.stream_object(f"s3://{bucket}/data/missing.csv", s3_settings))
    assert raised.value.reason == "ObjectMissing"


def _upload_folders(client: S3Client, bucket: str) -> set[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix="artifacts/objects/").get("Contents", [])
    return {o["Key"].split("/")[2] for o in listed}


def _start_uploader(server: minio.MinioServer, bucket: str, big: pathlib.Path) -> subprocess.Popen[str]:
    uploader = subprocess.Popen(
        [sys.executable, "-c", _UPLOADER, f"s3://{bucket}", str(big)],
        env=dict(os.environ, **server.env()),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert uploader.stdout is not None and uploader.stdout.readline().strip() == "uploading"
    return uploader


def _wait_for_new_folder(client: S3Client, bucket: str, known: set[str]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = _upload_folders(client, bucket) - known
        if new:
            [folder] = new
            return folder
        time.sleep(0.01)
    raise AssertionError("the uploader's first object never appeared")


def test_a_write_removes_upload_folders_abandoned_by_a_killed_uploader_and_nothing_else(
    minio_server: minio.MinioServer, s3_settings: s3.S3Settings, bucket: str, tmp_path: pathlib.Path
) -> None:
    client = s3.make_client(s3_settings)
    store = s3.S3ArtifactStore(f"s3://{bucket}", dataclasses.replace(s3_settings, abandoned_after_s=4))
    finished = store.put(_files())
    # An artifact written before markers existed: its manifest's metadata alone names its folder.
    legacy = store.put({"model.onnx": b"\x08\x07legacy"})
    [marker] = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=bucket, Prefix=f"artifacts/sha256/{legacy.digest}/")[
            "Contents"
        ]
        if "/.upload-" in o["Key"]
    ]
    client.delete_object(Bucket=bucket, Key=marker)
    kept = _upload_folders(client, bucket)
    assert len(kept) == 2

    # A trainer killed midway: its first object landed, the 200 MB one was in flight.
    big = tmp_path / "model.onnx"
    big.write_bytes(os.urandom(200 << 20))
    killed = _start_uploader(minio_server, bucket, big)
    killed_folder = _wait_for_new_folder(client, bucket, kept)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not [
        u
        for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        if killed_folder in u["Key"]
    ]:
        time.sleep(0.01)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(10)
    time.sleep(5)  # the leftovers (and the finished artifacts) are now older than 4 s

    # An upload in progress: its first object landed, the next file is read from a pipe.
    pipe = tmp_path / "slow.onnx"
    os.mkfifo(pipe)
    writing = _start_uploader(minio_server, bucket, pipe)
    writing_folder = _wait_for_new_folder(client, bucket, kept | {killed_folder})

    store.put({"model.onnx": b"\x08\x07another"})  # the write that collects
    folders = _upload_folders(client, bucket)
    assert killed_folder not in folders, "the killed upload's folder is left behind"
    assert kept | {writing_folder} <= folders
    incomplete = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert not [u for u in incomplete if killed_folder in u["Key"]], "its multipart upload was not aborted"
    for ref in (finished, legacy):
        assert store.fetch(ref.digest, tmp_path / "cache").digest == ref.digest

    # The upload in progress completes untouched.
    pipe.write_bytes(b"\x08\x07slow")
    assert writing.stdout is not None and writing.stdout.readline().strip() == "done"
    assert writing.wait(30) == 0
    expected = artifacts.manifest_bytes(
        {"a-small.json": artifacts.sha256_bytes(b"{}"), "model.onnx": artifacts.sha256_bytes(b"\x08\x07slow")}
    )
    assert (
        store.fetch(artifacts.sha256_bytes(expected), tmp_path / "cache").read("model.onnx")
        == b"\x08\x07slow"
    )
