"""The operator's login: the ServiceAccount directory named by its environment, else the
kubeconfig's current context (real files in a temporary directory)."""

from __future__ import annotations

import pathlib

import pytest

from mlsteward.operator import login


def test_the_service_account_directory_comes_from_the_environment(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("abc.def\n")
    (tmp_path / "ca.crt").write_text("not read here")
    (tmp_path / "namespace").write_text("ml\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setenv(login.SERVICE_ACCOUNT_DIR_ENV, str(tmp_path))
    info = login.credentials()
    assert info.server == "https://127.0.0.1:6443" and info.token == "abc.def"
    assert info.ca_path == f"{tmp_path}/ca.crt" and info.default_namespace == "ml"


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
    monkeypatch.setenv(login.SERVICE_ACCOUNT_DIR_ENV, str(tmp_path / "absent"))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    info = login.credentials()
    assert info.server == "https://127.0.0.9:7443" and info.token == "from-kubeconfig"


def test_kubeconfig_files_are_relative_to_it_and_data_is_kept(tmp_path: pathlib.Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "current-context: b\n"
        "clusters: [{name: k, cluster: {server: 'https://h:1', certificate-authority: ca.crt}}]\n"
        "users:\n"
        "- {name: cert, user: {client-certificate-data: Q0VSVA==, client-key: keys/k.pem}}\n"
        "- {name: file, user: {tokenFile: token}}\n"
        "contexts:\n"
        "- {name: a, context: {cluster: k, user: cert, namespace: team}}\n"
        "- {name: b, context: {cluster: k, user: file}}\n"
    )
    info = login.kubeconfig(str(kubeconfig))
    assert info.token == "from-file" and info.ca_path == str(tmp_path / "ca.crt")
    kubeconfig.write_text(kubeconfig.read_text().replace("current-context: b", "current-context: a"))
    info = login.kubeconfig(str(kubeconfig))
    assert info.certificate_data == b"Q0VSVA==" and info.private_key_path == str(tmp_path / "keys/k.pem")
    assert info.default_namespace == "team" and info.token is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("current-context: x\ncontexts: []\n", "no context named 'x'"),
        (
            "current-context: c\nclusters: [{name: k, cluster: {server: 'https://h:1'}}]\n"
            "users: [{name: u, user: {exec: {command: aws}}}]\n"
            "contexts: [{name: c, context: {cluster: k, user: u}}]\n",
            "exec plugin",
        ),
        (
            "current-context: c\nclusters: [{name: k, cluster: {}}]\n"
            "contexts: [{name: c, context: {cluster: k}}]\n",
            "has no server",
        ),
    ],
)
def test_an_unusable_kubeconfig_is_refused_with_what_is_missing(
    tmp_path: pathlib.Path, text: str, message: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(text)
    with pytest.raises(login.LoginError, match=message):
        login.kubeconfig(str(kubeconfig))


def test_no_kubeconfig_at_all_says_where_it_looked(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(login.LoginError, match="no kubeconfig found"):
        login.kubeconfig()
