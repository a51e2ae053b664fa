"""The CRDs generated from the API models: current, structural, documented, small."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import pytest

from mlsteward.api import crds, resources

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.get("properties", {}).items():
            found += _walk(value, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            found += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_the_committed_crds_are_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlsteward", "crds", "--check", "--dir", str(REPO_ROOT / "crds")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", resources.KINDS, ids=lambda k: k.kind)
def test_a_crd_schema_is_structural(kind: resources.Kind) -> None:
    schema = crds.build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path


@pytest.mark.parametrize("kind", resources.KINDS, ids=lambda k: k.kind)
def test_every_spec_field_has_a_description(kind: resources.Kind) -> None:
    schema = crds.build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    undocumented = [
        path
        for path, node in _walk(schema)
        if path and not path.endswith("[]") and not path.endswith("}") and not node.get("description")
    ]
    assert undocumented == []


@pytest.mark.parametrize("name", sorted(crds.render_crds()))
def test_a_crd_stays_well_under_the_client_side_apply_limit(name: str) -> None:
    assert len(crds.render_crds()[name].encode()) < 64 * 1024


def test_crds_check_fails_when_a_crd_is_stale(tmp_path: pathlib.Path) -> None:
    for name, text in crds.render_crds().items():
        (tmp_path / name).write_text(text.replace("Dataset location", "Where the data is"))
    result = subprocess.run(
        [sys.executable, "-m", "mlsteward", "crds", "--check", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "stale" in result.stderr


def test_the_model_crd_carries_the_protected_attribute_rule_with_its_field_path() -> None:
    spec = crds.build_crd(resources.MODEL)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    rules = spec["x-kubernetes-validations"]
    protected = [r for r in rules if "Regulation B" in r["message"]]
    assert protected and protected[0]["fieldPath"] == ".dataset.features"
    assert "marital" in protected[0]["rule"]
