"""In-cluster configuration: the service account directory is found at its standard path, or
through the mount table of the local cluster's process kubelet (GYRE_MOUNTS)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gyre_operator.kube import SERVICE_ACCOUNT_DIRECTORY, client_configuration, mounted_path


def test_without_a_mount_table_the_path_is_itself() -> None:
    assert mounted_path(SERVICE_ACCOUNT_DIRECTORY, {}) == SERVICE_ACCOUNT_DIRECTORY


def test_a_mounted_path_and_paths_under_it_resolve_to_the_local_directory() -> None:
    environ = {"GYRE_MOUNTS": json.dumps({SERVICE_ACCOUNT_DIRECTORY: "/pods/p/volumes/token"})}
    assert mounted_path(SERVICE_ACCOUNT_DIRECTORY, environ) == "/pods/p/volumes/token"
    token = f"{SERVICE_ACCOUNT_DIRECTORY}/token"
    assert mounted_path(token, environ) == "/pods/p/volumes/token/token"


def test_the_longest_mount_wins_and_siblings_are_not_prefixes() -> None:
    environ = {"GYRE_MOUNTS": json.dumps({"/data": "/local/data", "/data/models": "/local/m"})}
    assert mounted_path("/data/models/a.onnx", environ) == "/local/m/a.onnx"
    assert mounted_path("/data/x.csv", environ) == "/local/data/x.csv"
    assert mounted_path("/database/x", environ) == "/database/x"
    assert mounted_path("/data/..hidden", environ) == "/local/data/..hidden"


def test_in_a_pod_the_client_reads_token_and_ca_through_the_mount_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("the-token")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setenv("GYRE_MOUNTS", json.dumps({SERVICE_ACCOUNT_DIRECTORY: str(tmp_path)}))
    configuration = client_configuration(None)
    assert configuration.host == "https://127.0.0.1:6443"
    assert configuration.ssl_ca_cert == str(tmp_path / "ca.crt")
    assert configuration.get_api_key_with_prefix("BearerToken") == "bearer the-token"


def test_a_kubeconfig_in_the_environment_wins_over_in_cluster_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://remote.example:443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    assert client_configuration(None).host == "https://remote.example:443"
