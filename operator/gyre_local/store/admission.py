"""kube-apiserver's ServiceAccount admission on pod create: the pod runs as a service account
(`default` unless named) and, unless automounting is turned off, every container mounts a
projected volume with a token of it, the cluster's CA and the namespace at the standard path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gyre_local.names import random_suffix

DEFAULT_SERVICE_ACCOUNT = "default"
SERVICE_ACCOUNT_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
# What the kubelet asks for; kube-apiserver extends pod-bound tokens asked for so (reviews.py).
TOKEN_EXPIRATION_SECONDS = 3607
# 0644, the projected volume's default, set explicitly as kube-apiserver does.
_DEFAULT_MODE = 420


def service_account_name(pod: Mapping[str, Any]) -> str:
    """The service account a pod runs as: the one it names, else `default`."""
    spec = pod.get("spec") or {}
    return str(
        spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT
    )


def admit_pod(pod: dict[str, Any], service_account: Mapping[str, Any] | None) -> None:
    """Default the pod's service account and mount its token volume, in place.

    `service_account` is the stored ServiceAccount `service_account_name(pod)` names, or None:
    a missing one does not reject the pod (kube-apiserver's would) and counts as automounting."""
    name = service_account_name(pod)
    spec = pod.setdefault("spec", {})
    spec["serviceAccountName"] = name
    spec["serviceAccount"] = name
    if _automounts(spec, service_account):
        mount_token_volume(spec)


def _automounts(spec: Mapping[str, Any], account: Mapping[str, Any] | None) -> bool:
    """The pod's automountServiceAccountToken, else its ServiceAccount's, else true."""
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if account is not None and account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def mount_token_volume(spec: dict[str, Any]) -> None:
    """Mount the token volume in every container and init container not mounting something at
    the standard path already; add the volume (a `kube-api-access-` one is reused) if mounted."""
    volumes = spec.get("volumes") or []
    existing = [
        v["name"] for v in volumes if str(v.get("name", "")).startswith(TOKEN_VOLUME_PREFIX)
    ]
    volume_name = existing[0] if existing else _generated_name()
    mount = {"name": volume_name, "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}
    mounted = False
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        paths = {m.get("mountPath") for m in container.get("volumeMounts") or []}
        if SERVICE_ACCOUNT_MOUNT_PATH not in paths:
            container.setdefault("volumeMounts", []).append(dict(mount))
            mounted = True
    if mounted and not existing:
        spec["volumes"] = [*volumes, token_volume(volume_name)]


def token_volume(name: str) -> dict[str, Any]:
    """The projected volume kube-apiserver adds: token, the cluster's CA, the namespace."""
    token = {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}
    namespace_file = {
        "path": "namespace",
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
    }
    return {
        "name": name,
        "projected": {
            "defaultMode": _DEFAULT_MODE,
            "sources": [
                {"serviceAccountToken": token},
                {
                    "configMap": {
                        "name": ROOT_CA_CONFIGMAP,
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {"downwardAPI": {"items": [namespace_file]}},
            ],
        },
    }


def _generated_name() -> str:
    return TOKEN_VOLUME_PREFIX + random_suffix()
