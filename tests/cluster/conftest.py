"""A real control plane for the cluster tests: built from source once, started per session.

If the tools cannot be built or the control plane cannot start, every cluster test fails with
the reason. They never skip.
"""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import Iterator

import pytest
import yaml

from mlsteward.dev import controlplane, toolchain

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
_STARTUP_ERROR: list[str] = []


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    """etcd + kube-apiserver + controller-manager + scheduler + KWOK, with our CRDs installed."""
    if _STARTUP_ERROR:
        pytest.fail(_STARTUP_ERROR[0], pytrace=False)
    directory = tmp_path_factory.mktemp("control-plane")
    try:
        tools = toolchain.build()
        cp = controlplane.up(directory, fake_nodes=2, tools=tools)
        cp.kubectl("apply", "--server-side", "--field-manager=mlsteward-tests", "-f", str(REPO_ROOT / "crds"))
        cp.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=mlsteward",
        )
    except (toolchain.BuildError, controlplane.ControlPlaneError) as error:
        controlplane.down(directory)
        _STARTUP_ERROR.append(f"the local control plane could not be built or started: {error}")
        pytest.fail(_STARTUP_ERROR[0], pytrace=False)
    try:
        yield cp
    finally:
        controlplane.down(directory)
        print(f"\ncontrol-plane logs kept in {directory / 'logs'}")


@pytest.fixture
def namespace(control_plane: controlplane.ControlPlane) -> Iterator[str]:
    """A fresh namespace enforcing the Pod Security 'restricted' profile, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }
    control_plane.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
