"""The objects a cluster's own components keep: the kubelet's Node, the default StorageClass
and, as kube-controller-manager's serviceaccount controller does, a `default` ServiceAccount in
every namespace."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from typing import Any

from gyre_local.clock import now_rfc3339
from gyre_local.controllers.objects import is_deleting
from gyre_local.controllers.reconciler import Controller, Key
from gyre_local.kubelet.state import NODE_NAME
from gyre_local.store.builtins import DEFAULT_CLASS_ANNOTATION
from gyre_local.store.store import ApiError, Store

KUBELET_VERSION = "v1.32.0"
DEFAULT_STORAGE_CLASS = "standard"
DEFAULT_SERVICE_ACCOUNT = "default"
# What a kubelet allows by default (--max-pods).
_MAX_PODS = "110"
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


def create_cluster_objects(store: Store) -> None:
    """Create the Node `local` (Ready, sized as this machine) and the default StorageClass."""
    store.create("", "nodes", None, {"metadata": {"name": NODE_NAME, "labels": _node_labels()}})
    node = store.get("", "nodes", None, NODE_NAME)
    store.replace(
        "",
        "nodes",
        None,
        NODE_NAME,
        {**node, "status": _node_status(now_rfc3339())},
        subresource="status",
    )
    store.create(
        "storage.k8s.io",
        "storageclasses",
        None,
        {
            "metadata": {
                "name": DEFAULT_STORAGE_CLASS,
                "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
            },
            # The process kubelet binds every claim to a directory of its own at once.
            "provisioner": "local.gyre.dev/directory",
        },
    )


def _architecture() -> str:
    machine = platform.machine()
    return _ARCHITECTURES.get(machine, machine.lower())


def _node_labels() -> dict[str, str]:
    return {
        "kubernetes.io/arch": _architecture(),
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": NODE_NAME,
        "node-role.kubernetes.io/control-plane": "",
    }


def _node_status(now: str) -> dict[str, Any]:
    """A Ready node's status with this machine's CPUs and memory as capacity."""
    memory_kib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
    resources = {"cpu": str(os.cpu_count() or 1), "memory": f"{memory_kib}Ki", "pods": _MAX_PODS}
    healthy = [
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ]
    conditions = [
        _condition(kind, "False", reason, message, now) for kind, reason, message in healthy
    ]
    conditions.append(
        _condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", now)
    )
    return {
        "capacity": resources,
        "allocatable": dict(resources),
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": NODE_NAME},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": _architecture(),
            "bootID": "",
            "containerRuntimeVersion": "gyre-local://1.0.0",
            "kernelVersion": platform.release(),
            "kubeProxyVersion": KUBELET_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "machineID": "",
            "operatingSystem": "linux",
            "osImage": platform.platform(),
            "systemUUID": "",
        },
    }


def _condition(kind: str, status: str, reason: str, message: str, now: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


class ServiceAccountController(Controller):
    """Keeps a `default` ServiceAccount in every live namespace (recreated if deleted)."""

    resource = ("", "namespaces")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """ServiceAccounts, mapped to their namespace when they are the default one."""
        return [("", "serviceaccounts", _namespace_of_default)]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Create the namespace's default ServiceAccount if it is missing."""
        if not self._exists("namespaces", None, name, live=True):
            return None
        if not self._exists("serviceaccounts", name, DEFAULT_SERVICE_ACCOUNT, live=False):
            account = {"metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": name}}
            self.store.create("", "serviceaccounts", name, account)
        return None

    def _exists(self, plural: str, namespace: str | None, name: str, *, live: bool) -> bool:
        """Whether a core object exists (and, if `live`, is not being deleted)."""
        try:
            obj = self.store.get("", plural, namespace, name)
        except ApiError as error:
            if error.code != 404:
                raise
            return False
        return not (live and is_deleting(obj))


def _namespace_of_default(account: dict[str, Any]) -> list[Key]:
    metadata = account.get("metadata") or {}
    if metadata.get("name") != DEFAULT_SERVICE_ACCOUNT:
        return []
    return [("", metadata.get("namespace", ""))]
