"""Kubeconfig files pointing at the local cluster (no authentication, plain HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

NAME = "gyre-local"


def kubeconfig(server: str) -> dict[str, Any]:
    """A kubeconfig with cluster, user and context "gyre-local" for the server URL."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": {"server": server}}],
        "users": [{"name": NAME, "user": {}}],
        "contexts": [
            {"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": "default"}}
        ],
        "current-context": NAME,
        "preferences": {},
    }


def write_kubeconfig(path: Path, server: str) -> Path:
    """Write the kubeconfig for server to path (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(server), sort_keys=False))
    return path
