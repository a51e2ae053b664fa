"""The lifecycle with an S3 artifact store: a Model trains into MinIO, a Deployment serves from it.

Everything is real: a MinIO server, the local stack (control plane, the development node agent
that runs pods' real commands, the operator as a process under its own RBAC), the trainer in
the training Job's pod and ``mlsteward serve`` in the serving pod. The credentials live in a
Secret that only the pods read (``secretKeyRef``); the operator never sees them. A retraining
request with the pinned dataset reuses the artifact after the Job verified it in the bucket,
and the version says ``cached: true`` with a CacheHit Event, as with a PVC store.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from mlsteward.dev import controlplane, minio, stack, toolchain, traffic
from mlsteward.dev.agent import launcher
from mlsteward.operator import specs
from mlsteward.store import artifacts, s3
from mlsteward.training import datasets

NAMESPACE = "s3-lifecycle"
MODEL = "credit"
SECRET = "artifact-store-credentials"
Json = dict[str, Any]


@pytest.fixture(scope="module")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[minio.MinioServer]:
    try:
        server = minio.start(tmp_path_factory.mktemp("minio"), toolchain.build())
    except (toolchain.BuildError, minio.MinioError) as error:
        pytest.fail(f"the S3-compatible test server could not be built or started: {error}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    """Its own control plane with agent nodes only, so every pod really runs."""
    directory = tmp_path_factory.mktemp("s3-stack")
    try:
        running = stack.start(directory, tools=toolchain.build())
    except (toolchain.BuildError, controlplane.ControlPlaneError, launcher.AgentError) as error:
        pytest.fail(f"the local stack could not start: {error}", pytrace=False)
    yield running
    running.stop()
    print(f"\nstack logs kept in {directory} (operator.log, agent/agent.log, agent/logs/)")


def _kubectl(local_stack: stack.Stack, *args: str, input_text: str | None = None) -> str:
    return local_stack.cp.kubectl(*args, input_text=input_text).stdout


def _apply(local_stack: stack.Stack, manifest: Json) -> None:
    _kubectl(local_stack, "apply", "-n", NAMESPACE, "-f", "-", input_text=yaml.safe_dump(manifest))


def _get(local_stack: stack.Stack, resource: str, name: str) -> Json:
    out = local_stack.cp.kubectl("get", resource, name, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _ready(obj: Json) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (obj.get("status") or {}).get("conditions", [])
    )


@pytest.fixture(scope="module")
def bucket(minio_server: minio.MinioServer) -> tuple[str, bytes]:
    """A bucket holding the training data; returns (bucket, dataset bytes)."""
    name = f"lifecycle-{uuid.uuid4().hex[:8]}"
    client = s3.make_client(s3.S3Settings.from_environment(minio_server.env()))
    client.create_bucket(Bucket=name)
    buffer = io.BytesIO()
    datasets.generate(2000, seed=0).to_parquet(buffer)
    client.put_object(Bucket=name, Key="data/credit.parquet", Body=buffer.getvalue())
    return name, buffer.getvalue()


@pytest.fixture(scope="module")
def applied(
    local_stack: stack.Stack, minio_server: minio.MinioServer, bucket: tuple[str, bytes]
) -> Iterator[str]:
    name, data = bucket
    stack.create_namespace(local_stack.cp, NAMESPACE, local_stack.directory / "store")
    env = minio_server.env()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET},
        "data": {
            key: base64.b64encode(env[key].encode()).decode()
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        },
    }
    _apply(local_stack, secret)
    model = {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": MODEL},
        "spec": {
            "task": "classification",
            "dataset": {
                "uri": f"s3://{name}/data/credit.parquet",
                "sha256": artifacts.sha256_bytes(data),
                "format": "parquet",
                "target": datasets.TARGET,
                "features": list(datasets.EXAMPLE_FEATURES),
                "categorical": ["purpose", "home_ownership"],
                "sensitive": list(datasets.SENSITIVE),
            },
            "estimator": {"className": "LogisticRegression", "params": {"max_iter": 300}, "seed": 7},
            "fairnessGates": {"minGroupSize": 30},
            "artifactStore": {
                "s3": {
                    "bucket": name,
                    "prefix": "models",
                    "endpoint": env["MLSTEWARD_S3_ENDPOINT_URL"],
                    "credentialsSecretRef": {"name": SECRET},
                }
            },
        },
    }
    _apply(local_stack, model)
    _apply(
        local_stack,
        {
            "apiVersion": "mlsteward.io/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": MODEL},
            "spec": {"modelRef": {"name": MODEL, "alias": "champion"}, "replicas": 1},
        },
    )
    yield name


def _server_ip(local_stack: stack.Stack) -> str:
    def ready_ip() -> str | None:
        pods = json.loads(
            _kubectl(
                local_stack,
                "get",
                "pods",
                "-n",
                NAMESPACE,
                "-l",
                f"app.kubernetes.io/name=mlsteward-server,app.kubernetes.io/instance={MODEL}",
                "-o",
                "json",
            )
        )["items"]
        ready = [p for p in pods if _ready(p) and p["metadata"].get("deletionTimestamp") is None]
        return str(ready[0]["status"]["podIP"]) if ready else None

    return str(stack.wait_for("a Ready serving pod", ready_ip, 90, local_stack))


def test_a_model_trains_into_the_bucket_and_a_deployment_serves_it(
    local_stack: stack.Stack, minio_server: minio.MinioServer, applied: str, bucket: tuple[str, bytes]
) -> None:
    stack.wait_for("Model Ready", lambda: _ready(_get(local_stack, "models", MODEL)), 120, local_stack)
    version = _get(local_stack, "models", MODEL)["status"]["versions"][-1]
    digest = version["artifact"]["digest"]
    assert version["artifact"]["uri"] == f"s3://{applied}/models/artifacts/sha256/{digest}"
    store = s3.S3ArtifactStore(f"s3://{applied}/models", s3.S3Settings.from_environment(minio_server.env()))
    assert store.exists(digest)

    # The credentials reach the pods only as references to the Secret.
    job = _get(local_stack, "jobs", f"{MODEL}-v1")
    text = json.dumps(job)
    secret_value = minio_server.env()["AWS_SECRET_ACCESS_KEY"]
    assert secret_value not in text and '"secretKeyRef"' in text

    stack.wait_for(
        "Deployment Ready",
        lambda: _ready(_get(local_stack, "deployments.mlsteward.io", MODEL)),
        120,
        local_stack,
    )
    ip = _server_ip(local_stack)
    rows = pd.read_parquet(io.BytesIO(bucket[1])).head(3)
    numeric = [f for f in datasets.EXAMPLE_FEATURES if f not in ("purpose", "home_ownership")]
    body = traffic.infer_body(rows, numeric, ["purpose", "home_ownership"])
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"http://{ip}:8080/v2/models/{MODEL}/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1"
    pod_json = json.dumps(
        json.loads(_kubectl(local_stack, "get", "pods", "-n", NAMESPACE, "-o", "json"))["items"]
    )
    assert secret_value not in pod_json


def test_a_retraining_request_reuses_the_artifact_the_job_verified_in_the_bucket(
    local_stack: stack.Stack, applied: str
) -> None:
    before = _get(local_stack, "models", MODEL)["status"]["versions"][-1]
    _kubectl(
        local_stack,
        "annotate",
        "-n",
        NAMESPACE,
        "models",
        MODEL,
        f"{specs.RETRAIN_ANNOTATION}=again",
        "--overwrite",
    )

    def second() -> Json | None:
        versions = _get(local_stack, "models", MODEL).get("status", {}).get("versions", [])
        done = [v for v in versions if v["version"] == 2 and v.get("phase") in {"Succeeded", "Failed"}]
        return done[0] if done else None

    v2 = stack.wait_for("version 2", second, 90, local_stack)
    assert isinstance(v2, dict)
    assert v2["phase"] == "Succeeded", v2
    assert v2["artifact"] == before["artifact"]
    assert "reused the verified artifact" in v2.get("message", ""), v2
    assert v2["cached"] is True, v2  # as with a PVC store, where the operator verifies it itself
    command = _get(local_stack, "jobs", f"{MODEL}-v2")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--reuse-artifact") + 1] == before["artifact"]["digest"]

    def cache_hit() -> list[str]:
        listed = json.loads(
            _kubectl(
                local_stack,
                "get",
                "events",
                "-n",
                NAMESPACE,
                "--field-selector=reason=CacheHit",
                "-o",
                "json",
            )
        )["items"]
        return [e["message"] for e in listed if e["involvedObject"]["name"] == MODEL]

    messages = stack.wait_for("the CacheHit Event", cache_hit, 30, local_stack)
    assert isinstance(messages, list) and len(messages) == 1, messages
    message = str(messages[0])
    assert f"version 2 reuses version 1's verified artifact sha256:{before['artifact']['digest']}" in message
