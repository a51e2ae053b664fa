"""Fixtures for the chart's cluster tests: a control plane of their own, the real Helm from
the toolchain, and one release of charts/mlsteward installed into a restricted namespace.

The chart owns cluster-wide objects (CRDs, ClusterRoles, admission policies) whose names the
other cluster tests use too, so installing, upgrading and uninstalling it happens on a
separate control plane, started for this folder only.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from mlsteward.dev import controlplane, toolchain

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "mlsteward"
RELEASE = "mlsteward"
KUBE_VERSION = "1.36.3"
Json = dict[str, Any]


class Helm:
    """The toolchain's helm against the session's control plane."""

    def __init__(self, cp: controlplane.ControlPlane) -> None:
        self.cp = cp
        self.binary = cp.toolchain.binary("helm")
        assert self.binary.is_file(), f"helm is missing at {self.binary}: run `mlsteward dev build`"

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = self.cp.env()
        env["HELM_CACHE_HOME"] = str(self.cp.directory / "helm" / "cache")
        env["HELM_CONFIG_HOME"] = str(self.cp.directory / "helm" / "config")
        env["HELM_DATA_HOME"] = str(self.cp.directory / "helm" / "data")
        result = subprocess.run(
            [str(self.binary), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check:
            assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def template(self, *args: str) -> list[Json]:
        out = self(
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            "mlsteward-system",
            "--kube-version",
            KUBE_VERSION,
            *args,
        ).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="package")
def chart_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    """etcd + kube-apiserver + controller-manager + scheduler + KWOK (one fake node), no CRDs."""
    directory = tmp_path_factory.mktemp("chart-plane")
    try:
        cp = controlplane.up(directory, fake_nodes=1, tools=toolchain.build())
    except (toolchain.BuildError, controlplane.ControlPlaneError) as error:
        controlplane.down(directory)
        pytest.fail(f"the chart tests' control plane could not be built or started: {error}", pytrace=False)
    try:
        yield cp
    finally:
        controlplane.down(directory)
        print(f"\nchart control-plane logs kept in {directory / 'logs'}")


@pytest.fixture(scope="package")
def helm(chart_plane: controlplane.ControlPlane) -> Helm:
    return Helm(chart_plane)


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def get_json(cp: controlplane.ControlPlane, *args: str) -> Json | None:
    result = cp.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def restricted_namespace(cp: controlplane.ControlPlane, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }
    cp.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))
    return name


def operator_pod(cp: controlplane.ControlPlane, namespace: str) -> Json | None:
    pods = get_json(cp, "pods", "-n", namespace, "-l", "app.kubernetes.io/name=mlsteward-operator")
    items: list[Json] = (pods or {}).get("items", [])
    live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
    return live[0] if len(live) == 1 else None


def wait_operator_running(cp: controlplane.ControlPlane, namespace: str, not_uid: str | None = None) -> Json:
    def running() -> Json | None:
        pod = operator_pod(cp, namespace)
        if pod and pod["status"].get("phase") == "Running" and pod["metadata"]["uid"] != not_uid:
            return pod
        return None

    try:
        result: Json = wait_for("the operator pod to be Running on a KWOK node", running, timeout=90)
    except AssertionError as error:
        events = cp.kubectl("get", "events", "-n", namespace, check=False).stdout
        raise AssertionError(f"{error}\nevents:\n{events}") from None
    return result


@pytest.fixture(scope="package")
def release(chart_plane: controlplane.ControlPlane, helm: Helm) -> Iterator[str]:
    """The chart installed with its defaults (cluster-wide) into a fresh restricted namespace."""
    namespace = restricted_namespace(chart_plane, "mlsteward")
    helm("install", RELEASE, str(CHART), "--namespace", namespace, "--timeout", "90s")
    chart_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=mlsteward",
    )
    wait_operator_running(chart_plane, namespace)
    yield namespace
    helm("uninstall", RELEASE, "--namespace", namespace, check=False)
