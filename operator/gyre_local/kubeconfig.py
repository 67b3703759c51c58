"""Kubeconfig files pointing at the local cluster as kind writes them: HTTPS verified against
the cluster's CA, the user authenticated by a client certificate of that CA."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from gyre_local.certificates import Pki

NAME = "gyre-local"


def kubeconfig(server: str, pki: Pki) -> dict[str, Any]:
    """A kubeconfig with cluster, user and context "gyre-local" for the server URL, trusting
    the CA of `pki` and presenting its admin client certificate."""
    cluster = {"certificate-authority-data": _data(pki.ca_cert), "server": server}
    user = {
        "client-certificate-data": _data(pki.admin_cert),
        "client-key-data": _data(pki.admin_key),
    }
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": cluster}],
        "users": [{"name": NAME, "user": user}],
        "contexts": [
            {"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": "default"}}
        ],
        "current-context": NAME,
        "preferences": {},
    }


def write_kubeconfig(path: Path, server: str, pki: Pki) -> Path:
    """Write the kubeconfig for server to path (parents created, 0600: it holds a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(kubeconfig(server, pki), sort_keys=False))
    return path


def _data(path: Path) -> str:
    """A file's content as kubeconfig `*-data` fields carry it (base64)."""
    return base64.b64encode(path.read_bytes()).decode()
