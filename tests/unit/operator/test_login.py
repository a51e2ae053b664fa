"""The operator's in-cluster login reads the ServiceAccount directory named by its environment."""

from __future__ import annotations

import pathlib

import pytest

from mlsteward.operator import handlers


def test_the_service_account_directory_comes_from_the_environment(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("abc.def\n")
    (tmp_path / "ca.crt").write_text("not read here")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setenv(handlers.SA_DIR_ENV, str(tmp_path))
    info = handlers.credentials()
    assert info.server == "https://127.0.0.1:6443" and info.token == "abc.def"
    assert info.ca_path == f"{tmp_path}/ca.crt" and info.scheme == "Bearer"


def test_without_a_token_there_the_kubeconfig_is_used(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.9:7443'}}]\n"
        "users: [{name: u, user: {token: from-kubeconfig}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setenv(handlers.SA_DIR_ENV, str(tmp_path / "absent"))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    info = handlers.credentials()
    assert info.server == "https://127.0.0.9:7443" and info.token == "from-kubeconfig"
