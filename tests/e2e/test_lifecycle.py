"""The model's life, asserted step by step on the real stack with bounded waits.

Train -> verified artifact -> Ready; serve v2 inference at the pod IP; the monitor sees no drift
on normal traffic and drift on shifted traffic for exactly the shifted features; and the
failure paths: admission refuses a protected attribute, a corrupt dataset fails the Model
with a readable reason, a killed serving process is restarted and the Deployment recovers.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from mlsteward.dev import stack, traffic
from mlsteward.store import artifacts
from mlsteward.training import datasets as generator

NAMESPACE = "e2e"
MODEL = "credit-risk"
FEATURES = list(generator.EXAMPLE_FEATURES)
CATEGORICAL = list(generator.EXAMPLE_CATEGORICAL)
SHIFTED = {"income", "debt_ratio", "purpose", "home_ownership"}
UNSHIFTED = {"term_months", "employment_years", "credit_history_years"}
Json = dict[str, Any]


def _model(name: str, uri: str, features: list[str] | None = None) -> Json:
    return {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "task": "classification",
            "dataset": {
                "uri": uri,
                "format": "parquet",
                "target": "default",
                "features": features or FEATURES,
                "categorical": CATEGORICAL,
                "sensitive": ["sex", "age", "race", "marital_status"],
            },
            "estimator": {
                "className": "HistGradientBoostingClassifier",
                "params": {"max_iter": 50},
                "seed": 7,
            },
            "qualityGates": {"minRocAuc": 0.65},
            "fairnessGates": {"minGroupSize": 30},
        },
    }


def _get(local_stack: stack.Stack, resource: str, name: str) -> Json:
    out = local_stack.cp.kubectl("get", resource, name, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _condition(obj: Json, kind: str) -> Json:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition["type"] == kind:
            return dict(condition)
    return {}


def _apply(local_stack: stack.Stack, manifest: Json) -> None:
    local_stack.cp.kubectl("apply", "-n", NAMESPACE, "-f", "-", input_text=yaml.safe_dump(manifest))


@pytest.fixture(scope="module")
def deployed(local_stack: stack.Stack, datasets: dict[str, pathlib.Path]) -> Iterator[str]:
    """The credit Model, its Deployment and Monitor applied in a restricted namespace."""
    stack.create_namespace(local_stack.cp, NAMESPACE, local_stack.directory / "store")
    _apply(local_stack, _model(MODEL, local_stack.data.url("credit.parquet")))
    _apply(
        local_stack,
        {
            "apiVersion": "mlsteward.io/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": MODEL},
            "spec": {"modelRef": {"name": MODEL, "alias": "champion"}, "replicas": 1},
        },
    )
    _apply(
        local_stack,
        {
            "apiVersion": "mlsteward.io/v1alpha1",
            "kind": "Monitor",
            "metadata": {"name": MODEL},
            "spec": {
                "deploymentRef": {"name": MODEL},
                "window": {"kind": "tumbling", "size": 1000, "minSamples": 800},
                "drift": {"consecutiveWindows": 1},
                "evaluationIntervalSeconds": 5,
            },
        },
    )
    yield MODEL


def _server_ip(local_stack: stack.Stack, *, with_monitor: bool = False) -> str:
    """The pod IP of the one Ready serving pod (with the drift-monitor sidecar when asked).

    Injecting the sidecar rolls the pods, so callers that need the monitor wait for a pod that
    has it, and for the old pod to be gone, before they send traffic.
    """

    def ready_ip() -> str | None:
        pods = json.loads(
            local_stack.cp.kubectl(
                "get",
                "pods",
                "-n",
                NAMESPACE,
                "-l",
                f"app.kubernetes.io/name=mlsteward-server,app.kubernetes.io/instance={MODEL}",
                "-o",
                "json",
            ).stdout
        )["items"]
        live = [p for p in pods if p["metadata"].get("deletionTimestamp") is None]
        if len(live) != 1 or len(pods) != 1:
            return None
        pod = live[0]
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
        )
        containers = {c["name"] for c in pod["spec"]["containers"]}
        if not ready or (with_monitor and "monitor" not in containers):
            return None
        return str(pod["status"]["podIP"])

    return str(stack.wait_for("one Ready serving pod", ready_ip, 180, local_stack))


NUMERIC = list(generator.NUMERIC)


def _infer_body(frame: pd.DataFrame) -> Json:
    return traffic.infer_body(frame, NUMERIC, CATEGORICAL, ["sex"])


def _send(ip: str, frame: pd.DataFrame, batch: int = 50) -> None:
    url = f"http://{ip}:8080/v2/models/{MODEL}/infer"
    assert traffic.send(url, frame, NUMERIC, CATEGORICAL, ["sex"], batch=batch) == len(frame)


def test_the_model_trains_to_a_verified_artifact_and_becomes_ready(
    local_stack: stack.Stack, deployed: str, datasets: dict[str, pathlib.Path]
) -> None:
    stack.wait_for(
        "Model Ready",
        lambda: _condition(_get(local_stack, "models", MODEL), "Ready").get("status") == "True",
        300,
        local_stack,
    )
    model = _get(local_stack, "models", MODEL)
    version = model["status"]["versions"][-1]
    assert version["phase"] == "Succeeded" and version["gates"]["promotable"] is True
    assert model["status"]["aliases"]["champion"] == version["version"]
    assert version["datasetSha256"] == artifacts.sha256_file(datasets["normal"])
    path = pathlib.Path(urllib.parse.urlparse(version["artifact"]["uri"]).path)
    verified = artifacts.open_artifact(path, version["artifact"]["digest"])
    lineage = json.loads(verified.read("lineage.json"))
    assert lineage["model_onnx_sha256"] == verified.files["model.onnx"]
    assert {"model.onnx", "profile.json", "card.md", "metrics.json"} <= set(verified.files)


def test_the_deployment_answers_v2_inference_at_the_pod_ip(
    local_stack: stack.Stack, deployed: str, datasets: dict[str, pathlib.Path]
) -> None:
    stack.wait_for(
        "Deployment Ready",
        lambda: (
            _condition(_get(local_stack, "deployments.mlsteward.io", MODEL), "Ready").get("status") == "True"
        ),
        300,
        local_stack,
    )
    ip = _server_ip(local_stack)
    rows = pd.read_parquet(datasets["normal"]).head(5)
    with httpx.Client(timeout=30) as client:
        assert client.get(f"http://{ip}:8080/v2/health/ready").json() == {"ready": True}
        response = client.post(
            f"http://{ip}:8080/v2/models/{MODEL}/infer", json={"id": "e2e-1", **_infer_body(rows)}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == "e2e-1" and body["model_version"] == "1"
        assert {o["name"] for o in body["outputs"]} >= {"label", "probabilities"}
        wrong = client.post(
            f"http://{ip}:8080/v2/models/{MODEL}/infer", json={"inputs": [{"name": "income"}]}
        )
        assert 400 <= wrong.status_code < 500 and "error" in wrong.json()


def test_the_monitor_sees_no_drift_on_normal_traffic_and_drift_on_exactly_the_shifted_features(
    local_stack: stack.Stack, deployed: str, datasets: dict[str, pathlib.Path]
) -> None:
    ip = _server_ip(local_stack, with_monitor=True)
    normal = pd.read_parquet(datasets["normal"]).sample(1000, random_state=3)
    _send(ip, normal)

    def verdict(drifting: bool) -> Json | None:
        monitor = _get(local_stack, "monitors", MODEL)
        condition = _condition(monitor, "Drifting")
        if (
            condition.get("status") == ("True" if drifting else "False")
            and condition.get("reason") != "InsufficientData"
        ):
            return monitor
        return None

    calm = stack.wait_for("a no-drift verdict on normal traffic", lambda: verdict(False), 120, local_stack)
    assert isinstance(calm, dict) and not any(f["drifting"] for f in calm["status"]["features"])
    _send(ip, pd.read_parquet(datasets["shifted"]).head(1200))
    drifted = stack.wait_for("a drift verdict on shifted traffic", lambda: verdict(True), 120, local_stack)
    assert isinstance(drifted, dict)
    flagged = {f["name"] for f in drifted["status"]["features"] if f["drifting"]}
    assert flagged >= SHIFTED, flagged
    assert not (UNSHIFTED & flagged), flagged


def test_a_protected_attribute_as_a_feature_is_refused_at_admission(
    local_stack: stack.Stack, deployed: str
) -> None:
    manifest = _model("uses-sex", local_stack.data.url("credit.parquet"), [*FEATURES, "sex"])
    manifest["spec"]["dataset"]["sensitive"] = ["age", "race", "marital_status"]
    result = local_stack.cp.kubectl(
        "apply", "-n", NAMESPACE, "-f", "-", input_text=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0
    assert "spec.dataset.features" in result.stderr and "protected attribute" in result.stderr


def test_a_corrupt_dataset_fails_the_model_with_a_readable_reason(
    local_stack: stack.Stack, deployed: str
) -> None:
    _apply(local_stack, _model("corrupt-data", local_stack.data.url("corrupt.parquet")))

    def failed_version() -> Json | None:
        versions = _get(local_stack, "models", "corrupt-data").get("status", {}).get("versions", [])
        return versions[-1] if versions and versions[-1]["phase"] == "Failed" else None

    version = stack.wait_for("the corrupt-data Model to fail", failed_version, 180, local_stack)
    assert isinstance(version, dict)
    assert version["reason"] == "DataInvalid", version
    assert "parquet" in version["message"].lower()
    assert not version.get("artifact")


def _server_pid(ip: str) -> int:
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and ip.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no `mlsteward serve` process bound to {ip}")


def test_a_killed_serving_process_is_restarted_and_the_deployment_recovers(
    local_stack: stack.Stack, deployed: str, datasets: dict[str, pathlib.Path]
) -> None:
    ip = _server_ip(local_stack)
    os.kill(_server_pid(ip), signal.SIGKILL)

    def restarted() -> bool:
        pods = json.loads(
            local_stack.cp.kubectl(
                "get",
                "pods",
                "-n",
                NAMESPACE,
                "-l",
                f"app.kubernetes.io/name=mlsteward-server,app.kubernetes.io/instance={MODEL}",
                "-o",
                "json",
            ).stdout
        )["items"]
        return any(
            s["name"] == "server" and s.get("restartCount", 0) >= 1 and s.get("ready")
            for pod in pods
            for s in pod["status"].get("containerStatuses", [])
        )

    stack.wait_for("the serving container to restart and become ready", restarted, 180, local_stack)
    stack.wait_for(
        "Deployment Ready again",
        lambda: (
            _condition(_get(local_stack, "deployments.mlsteward.io", MODEL), "Ready").get("status") == "True"
        ),
        120,
        local_stack,
    )
    _send(_server_ip(local_stack), pd.read_parquet(datasets["normal"]).head(20), batch=10)
