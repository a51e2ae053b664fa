"""``mlsteward serve`` from an S3 store: train into a real MinIO bucket, serve from it.

The server downloads a version once into its cache, verifying every object against the
manifest and the manifest against the routing file's digest; a corrupted object, a missing
artifact or wrong credentials keep it not ready with the reason in the log, on
``/v2/health/ready`` and in ``mlsteward_serving_model_load_failures_total``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mlsteward.dev import controlplane, minio
from mlsteward.store import artifacts, s3
from mlsteward.training import datasets

MLSTEWARD = pathlib.Path(sys.executable).parent / "mlsteward"


@dataclasses.dataclass(frozen=True)
class Trained:
    location: str
    digest: str


@pytest.fixture(scope="module")
def trained(minio_server: minio.MinioServer, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One LogisticRegression trained by ``mlsteward train --store s3://...``."""
    base = tmp_path_factory.mktemp("s3-serving")
    bucket = f"serving-{uuid.uuid4().hex[:8]}"
    s3.make_client(s3.S3Settings.from_environment(minio_server.env())).create_bucket(Bucket=bucket)
    data = base / "credit.parquet"
    datasets.write(datasets.generate(2000, seed=3), data)
    spec = datasets.example_spec(data.as_uri(), estimator={"params": {"max_iter": 300}})
    (base / "spec.json").write_text(json.dumps(spec))
    location = f"s3://{bucket}/models"
    result = subprocess.run(
        [str(MLSTEWARD), "train", "--spec", str(base / "spec.json"), "--store", location],
        env=_environment(minio_server.env()),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    outcome = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
    assert outcome.get("artifact"), f"training failed: {outcome} {result.stderr[-3000:]}"
    assert outcome["artifact"]["uri"].startswith(f"{location}/artifacts/sha256/")
    return Trained(location, outcome["artifact"]["digest"])


def _environment(extra: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("MLSTEWARD_", "AWS_"))}, **extra}


class Served:
    """One ``mlsteward serve`` process reading an s3:// store."""

    def __init__(
        self, folder: pathlib.Path, store: str, digest: str, env: dict[str, str], cache: pathlib.Path
    ):
        folder.mkdir(parents=True, exist_ok=True)
        routing = folder / "routing.json"
        routing.write_text(json.dumps({"model": "credit", "champion": {"version": "1", "digest": digest}}))
        self.port = controlplane.free_port()
        self.log_path = folder / "server.log"
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    str(MLSTEWARD),
                    "serve",
                    "--routing",
                    str(routing),
                    "--store",
                    store,
                    "--cache-dir",
                    str(cache),
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_environment(env),
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def log(self) -> str:
        return self.log_path.read_text()

    def ready(self, timeout: float = 60) -> httpx.Response:
        """The first answer of /v2/health/ready once the first load attempt is over."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited:\n{self.log()}"
            with contextlib.suppress(httpx.TransportError):
                answer = self.client.get("/v2/health/ready")
                if answer.status_code == 200 or "not been loaded yet" not in answer.text:
                    return answer
            time.sleep(0.05)
        raise AssertionError(f"no load attempt finished in {timeout} s:\n{self.log()}")

    def failures(self, reason: str) -> float:
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(f'mlsteward_serving_model_load_failures_total{{reason="{reason}"}}'):
                return float(line.rpartition(" ")[2])
        return 0.0

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def serve(tmp_path: pathlib.Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(store: str, digest: str, env: dict[str, str], cache: pathlib.Path | None = None) -> Served:
        server = Served(tmp_path / f"server-{len(started)}", store, digest, env, cache or tmp_path / "cache")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


ROW = {
    "income": 52000.0,
    "debt_ratio": 0.3,
    "loan_amount": 12000.0,
    "term_months": 36.0,
    "employment_years": 4.0,
    "credit_history_years": 9.0,
    "delinquencies": 1.0,
    "purpose": "car",
    "home_ownership": "rent",
}


def _infer(server: Served) -> dict[str, Any]:
    inputs = [
        {
            "name": name,
            "shape": [1, 1],
            "datatype": "BYTES" if isinstance(value, str) else "FP32",
            "data": [value],
        }
        for name, value in ROW.items()
        if name in datasets.EXAMPLE_FEATURES
    ]
    answer = server.client.post("/v2/models/credit/infer", json={"inputs": inputs})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_the_server_downloads_a_trained_version_once_and_serves_it(
    trained: Trained, minio_server: minio.MinioServer, serve: Any, tmp_path: pathlib.Path
) -> None:
    cache = tmp_path / "cache"
    server = serve(trained.location, trained.digest, minio_server.env(), cache)
    assert server.ready().status_code == 200, server.log()
    assert _infer(server)["model_version"] == "1"
    cached = cache / "artifacts" / "sha256" / trained.digest
    assert artifacts.open_artifact(cached, trained.digest).files.keys() >= {"model.onnx", "schema.json"}
    assert not list((cache / "artifacts" / ".staging").iterdir())
    # A second process on the same cache (a restarted container in the same pod) loads the
    # verified copy without the bucket: its credentials are wrong, yet it becomes ready.
    wrong = {**minio_server.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    again = serve(trained.location, trained.digest, wrong, cache)
    assert again.ready().status_code == 200, again.log()
    assert _infer(again)["model_version"] == "1"


def test_a_corrupted_object_in_the_bucket_is_refused_by_the_server(
    trained: Trained, minio_server: minio.MinioServer, serve: Any, tmp_path: pathlib.Path
) -> None:
    settings = s3.S3Settings.from_environment(minio_server.env())
    fetched = s3.S3ArtifactStore(trained.location, settings).fetch(trained.digest, tmp_path / "source")
    copy_location = f"{trained.location}-corrupt-{uuid.uuid4().hex[:6]}"
    copy = s3.S3ArtifactStore(copy_location, settings)
    ref = copy.put({name: fetched.file(name) for name in fetched.files})
    assert ref.digest == trained.digest
    # Overwrite model.onnx in the bucket behind the store's back.
    bucket, prefix = s3.parse_s3_uri(copy_location)
    client = s3.make_client(settings)
    [key] = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/artifacts/objects/")["Contents"]
        if o["Key"].endswith("/model.onnx")
    ]
    client.put_object(Bucket=bucket, Key=key, Body=fetched.read("model.onnx")[:-10] + b"0123456789")
    server = serve(copy_location, trained.digest, minio_server.env(), tmp_path / "fresh-cache")
    answer = server.ready()
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert "digest_mismatch" in error and "model.onnx" in error and "refusing it" in error, error
    assert server.failures("digest_mismatch") >= 1
    assert "routing change refused (digest_mismatch)" in server.log()
    assert not (tmp_path / "fresh-cache" / "artifacts" / "sha256" / trained.digest).exists()


def test_wrong_credentials_keep_the_server_not_ready_and_say_so(
    trained: Trained, minio_server: minio.MinioServer, serve: Any
) -> None:
    wrong = {**minio_server.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    server = serve(trained.location, trained.digest, wrong)
    answer = server.ready()
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert "store_unavailable" in error and "CredentialsRejected" in error and "credentials" in error, error
    assert server.failures("store_unavailable") >= 1


def test_a_digest_with_no_manifest_in_the_bucket_is_missing(
    trained: Trained, minio_server: minio.MinioServer, serve: Any
) -> None:
    server = serve(trained.location, "d" * 64, minio_server.env())
    answer = server.ready()
    assert answer.status_code == 503 and "artifact_missing" in answer.json()["error"], answer.text
    assert server.failures("artifact_missing") >= 1


_UPLOADER = """
import os, pathlib, sys
from mlsteward.store import s3
store = s3.S3ArtifactStore(sys.argv[1], s3.S3Settings.from_environment(os.environ))
print("uploading", flush=True)
store.put({"a-schema.json": b"{}", "model.onnx": pathlib.Path(sys.argv[2])})
"""


def test_an_upload_killed_midway_is_never_served(
    minio_server: minio.MinioServer, serve: Any, tmp_path: pathlib.Path
) -> None:
    """The trainer's upload (``put``, as ``mlsteward train`` calls it) SIGKILLed between objects."""
    settings = s3.S3Settings.from_environment(minio_server.env())
    bucket = f"killed-{uuid.uuid4().hex[:8]}"
    client = s3.make_client(settings)
    client.create_bucket(Bucket=bucket)
    big = tmp_path / "model.onnx"
    big.write_bytes(os.urandom(100 << 20))
    digests = {"a-schema.json": artifacts.sha256_bytes(b"{}"), "model.onnx": artifacts.sha256_file(big)}
    expected = artifacts.sha256_bytes(artifacts.manifest_bytes(digests))
    uploader = subprocess.Popen(
        [sys.executable, "-c", _UPLOADER, f"s3://{bucket}", str(big)],
        env=_environment(minio_server.env()),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert uploader.stdout is not None and uploader.stdout.readline().strip() == "uploading"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once the first object landed
        if any(
            o["Key"].endswith("a-schema.json")
            for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])
        ):
            break
        time.sleep(0.01)
    uploader.kill()
    uploader.wait(10)
    assert not any(
        o["Key"].endswith("manifest.json") for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])
    )
    server = serve(f"s3://{bucket}", expected, minio_server.env())
    answer = server.ready()
    assert answer.status_code == 503 and "artifact_missing" in answer.json()["error"], answer.text
    assert "its manifest is missing" in answer.json()["error"]
