"""The operator's connection to the Kubernetes API server."""

from __future__ import annotations

import kopf
from kubernetes import client, config


def connection_from_kubeconfig(path: str) -> kopf.ConnectionInfo:
    """kopf's connection settings for the current context of a kubeconfig file."""
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=path, client_configuration=configuration
    )
    token = configuration.api_key.get("authorization", "").removeprefix("Bearer ").strip()
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )
