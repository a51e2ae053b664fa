"""``mlsteward train`` with the dataset and the artifact store in a real S3-compatible bucket."""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from mlsteward.dev import minio
from mlsteward.store import artifacts, s3
from mlsteward.training import datasets


def _spec(uri: str, **dataset: Any) -> dict[str, Any]:
    return datasets.example_spec(
        uri, dataset={"uri": uri, "format": "parquet", **dataset}, estimator={"params": {"max_iter": 300}}
    )


def _train(
    server: minio.MinioServer,
    spec: dict[str, Any],
    store: str,
    tmp_path: pathlib.Path,
    *flags: str,
    env: dict[str, str] | None = None,
) -> tuple[int, Any]:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    result = subprocess.run(
        [sys.executable, "-m", "mlsteward", "train", "--spec", str(spec_file), "--store", store, *flags],
        env={**os.environ, **server.env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr
    return result.returncode, json.loads(lines[-1])


@pytest.fixture
def dataset_bytes() -> bytes:
    buffer = io.BytesIO()
    datasets.generate(3000, seed=0).to_parquet(buffer)
    return buffer.getvalue()


def test_training_reads_the_dataset_from_the_bucket_writes_the_artifact_there_and_can_reuse_it(
    minio_server: minio.MinioServer,
    s3_settings: s3.S3Settings,
    bucket: str,
    dataset_bytes: bytes,
    tmp_path: pathlib.Path,
) -> None:
    s3.make_client(s3_settings).put_object(Bucket=bucket, Key="data/credit.parquet", Body=dataset_bytes)
    spec = _spec(f"s3://{bucket}/data/credit.parquet", sha256=artifacts.sha256_bytes(dataset_bytes))
    location = f"s3://{bucket}/models"
    code, outcome = _train(minio_server, spec, location, tmp_path)
    assert code == 0 and outcome["gates"]["promotable"], outcome
    assert outcome["dataset_sha256"] == artifacts.sha256_bytes(dataset_bytes)
    digest = outcome["artifact"]["digest"]
    assert outcome["artifact"]["uri"] == f"s3://{bucket}/models/artifacts/sha256/{digest}"
    store = s3.S3ArtifactStore(location, s3_settings)
    assert store.exists(digest)
    fetched = store.fetch(digest, tmp_path / "cache")
    lineage = json.loads(fetched.read("lineage.json"))
    assert lineage["model_onnx_sha256"] == fetched.files["model.onnx"]

    # --reuse-artifact (the operator's training cache for S3 stores; it never reads the Secret):
    # the Job verifies the artifact in the bucket and reports the earlier outcome, no training.
    code, reused = _train(minio_server, spec, location, tmp_path, "--reuse-artifact", digest)
    assert code == 0 and "reused the verified artifact" in reused["message"], reused
    same = ("artifact", "dataset_sha256", "spec_hash", "gates")
    assert {k: reused[k] for k in same} == {k: outcome[k] for k in same}
    assert reused["metrics"] == pytest.approx(outcome["metrics"])
    # Gone from the bucket: the Job trains again and writes it anew.
    s3.make_client(s3_settings).delete_object(
        Bucket=bucket, Key=f"models/artifacts/sha256/{digest}/manifest.json"
    )
    code, again = _train(minio_server, spec, location, tmp_path, "--reuse-artifact", digest)
    assert code == 0 and "reused" not in again["message"], again
    assert store.exists(again["artifact"]["digest"])


def test_a_pinned_digest_that_differs_fails_before_anything_is_written(
    minio_server: minio.MinioServer,
    s3_settings: s3.S3Settings,
    bucket: str,
    dataset_bytes: bytes,
    tmp_path: pathlib.Path,
) -> None:
    s3.make_client(s3_settings).put_object(Bucket=bucket, Key="data/credit.parquet", Body=dataset_bytes)
    spec = _spec(f"s3://{bucket}/data/credit.parquet", sha256="0" * 64)
    code, outcome = _train(minio_server, spec, f"s3://{bucket}/models", tmp_path)
    assert code == 2 and outcome["reason"] == "DigestMismatch"
    listed = s3.make_client(s3_settings).list_objects_v2(Bucket=bucket, Prefix="models/").get("KeyCount", 0)
    assert listed == 0


def test_a_missing_dataset_object_is_a_readable_data_error(
    minio_server: minio.MinioServer, bucket: str, tmp_path: pathlib.Path
) -> None:
    code, outcome = _train(
        minio_server, _spec(f"s3://{bucket}/data/absent.parquet"), f"s3://{bucket}/m", tmp_path
    )
    assert code == 2 and outcome["reason"] == "DataInvalid"
    assert "absent.parquet" in outcome["message"] and "no such object" in outcome["message"]


def test_wrong_credentials_for_the_store_fail_training_with_their_own_reason(
    minio_server: minio.MinioServer, bucket: str, dataset_bytes: bytes, tmp_path: pathlib.Path
) -> None:
    data = tmp_path / "credit.parquet"
    data.write_bytes(dataset_bytes)
    termination = tmp_path / "termination-log"
    code, outcome = _train(
        minio_server,
        _spec(data.as_uri()),
        f"s3://{bucket}/models",
        tmp_path,
        "--termination-message-path",
        str(termination),
        env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
    )
    assert code == 1 and outcome["outcome"] == "failed", outcome
    # The pod's termination message is what the operator reads into the Model's status.
    written = json.loads(termination.read_bytes())
    assert written == outcome and written["reason"] == "StoreCredentialsRejected", written
    assert "rejected the credentials (SignatureDoesNotMatch)" in written["message"], written
    assert f"s3://{bucket}/models" in written["message"], written


def test_a_dataset_in_a_bucket_that_does_not_exist_fails_before_training_with_its_own_reason(
    minio_server: minio.MinioServer, bucket: str, tmp_path: pathlib.Path
) -> None:
    termination = tmp_path / "termination-log"
    code, outcome = _train(
        minio_server,
        _spec("s3://no-such-bucket-here/data/credit.parquet"),
        f"s3://{bucket}/models",
        tmp_path,
        "--termination-message-path",
        str(termination),
    )
    written = json.loads(termination.read_bytes())
    assert code == 1 and written == outcome and written["reason"] == "StoreBucketMissing", written
    assert "s3://no-such-bucket-here/data/credit.parquet" in written["message"], written
    assert "bucket does not exist" in written["message"], written
