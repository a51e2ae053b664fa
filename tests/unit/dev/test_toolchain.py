"""The toolchain cache: versioned directories, completion markers, no rebuild when present."""

from __future__ import annotations

import pathlib

import pytest

from mlsteward.dev import toolchain


def _complete(tools: toolchain.Toolchain) -> None:
    for directory in (tools.kubernetes_dir, tools.etcd_dir, tools.kwok_dir, tools.helm_dir, tools.minio_dir):
        directory.mkdir(parents=True)
        (directory / ".complete").write_text("0s\n")


def test_tool_directories_are_versioned() -> None:
    tools = toolchain.Toolchain(pathlib.Path("/cache"))
    assert tools.binary("kube-apiserver") == pathlib.Path(
        f"/cache/bin/kubernetes-{toolchain.KUBERNETES_VERSION}/kube-apiserver"
    )
    assert tools.binary("etcd").parent.name == f"etcd-{toolchain.ETCD_VERSION}"
    assert tools.binary("helm").parent.name == f"helm-{toolchain.HELM_VERSION}"


def test_an_unknown_tool_name_is_an_error() -> None:
    with pytest.raises(KeyError, match="docker"):
        toolchain.Toolchain(pathlib.Path("/cache")).binary("docker")


def test_build_does_nothing_when_every_tool_is_complete(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = toolchain.Toolchain(tmp_path)
    _complete(tools)
    # With every marker present, build must not even look for Go.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert toolchain.build(tmp_path, echo=False) == toolchain.Toolchain(tmp_path.resolve())


def test_an_interrupted_build_is_not_complete(tmp_path: pathlib.Path) -> None:
    tools = toolchain.Toolchain(tmp_path)
    _complete(tools)
    (tools.kubernetes_dir / ".complete").unlink()
    assert not tools.is_complete()


def test_the_cache_directory_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("MLSTEWARD_CACHE", str(tmp_path / "explicit"))
    assert toolchain.default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("MLSTEWARD_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert toolchain.default_cache_dir() == tmp_path / "xdg" / "mlsteward"


def test_the_version_ldflags_stamp_both_version_packages() -> None:
    flags = toolchain._version_ldflags("v1.36.3")
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in flags
    assert "-X k8s.io/client-go/pkg/version.gitMinor=36" in flags
