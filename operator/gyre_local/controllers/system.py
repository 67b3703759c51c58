"""The objects a cluster's own components keep: the kubelet's Node, the default StorageClass,
the `kubernetes` Service naming the API server, and in every namespace a `default`
ServiceAccount and the `kube-root-ca.crt` ConfigMap, as kube-controller-manager keeps them."""

from __future__ import annotations

import os
import platform
from abc import abstractmethod
from collections.abc import Iterable
from typing import Any

from gyre_local.clock import now_rfc3339
from gyre_local.controllers.endpoints import DISCOVERY_GROUP
from gyre_local.controllers.objects import is_deleting
from gyre_local.controllers.reconciler import Controller, Key, find
from gyre_local.jsoncopy import json_copy
from gyre_local.kubelet.state import NODE_NAME
from gyre_local.store.admission import DEFAULT_SERVICE_ACCOUNT, ROOT_CA_CONFIGMAP
from gyre_local.store.builtins import DEFAULT_CLASS_ANNOTATION
from gyre_local.store.store import Store

KUBELET_VERSION = "v1.32.0"
DEFAULT_STORAGE_CLASS = "standard"
ROOT_CA_DESCRIPTION_ANNOTATION = "kubernetes.io/description"
_ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)
API_SERVICE_NAMESPACE = "default"
API_SERVICE_NAME = "kubernetes"
# The first address of the Service range, as kube-apiserver gives the `kubernetes` Service (the
# store assigns other Services the addresses after it).
API_SERVICE_IP = "10.96.0.1"
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


class NamespaceObjectController(Controller):
    """Keeps one core object named `name` in every live namespace, recreated if deleted and
    with its `restored` fields put back if changed. Subclasses give `plural`, `name`,
    `restored` and `desired`."""

    resource = ("", "namespaces")
    plural: str
    name: str
    restored: tuple[str, ...] = ()

    @abstractmethod
    def desired(self, namespace: str) -> dict[str, Any]:
        """The object the namespace must hold."""

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """The kept objects, mapped to their namespace."""
        return [("", self.plural, self._namespace_of_kept)]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Create the namespace's object if it is missing, restore it if it changed."""
        if not _is_live(self.find("", "namespaces", "", name)):
            return None
        wanted = self.desired(name)
        current = self.find("", self.plural, name, self.name)
        if current is None:
            self.store.create("", self.plural, name, wanted)
        elif any(current.get(field) != wanted.get(field) for field in self.restored):
            restored = {field: wanted.get(field) for field in self.restored}
            self.store.replace("", self.plural, name, self.name, {**current, **restored})
        return None

    def _namespace_of_kept(self, obj: dict[str, Any]) -> list[Key]:
        metadata = obj.get("metadata") or {}
        if metadata.get("name") != self.name:
            return []
        return [("", metadata.get("namespace", ""))]


class ServiceAccountController(NamespaceObjectController):
    """A `default` ServiceAccount in every namespace, as kube-controller-manager's serviceaccount
    controller keeps."""

    plural = "serviceaccounts"
    name = DEFAULT_SERVICE_ACCOUNT

    def desired(self, namespace: str) -> dict[str, Any]:
        """The namespace's default ServiceAccount."""
        return {"metadata": {"name": self.name, "namespace": namespace}}


class RootCAPublisher(NamespaceObjectController):
    """The ConfigMap `kube-root-ca.crt` with the cluster's CA in every namespace, as
    kube-controller-manager's root-ca-cert-publisher keeps it."""

    plural = "configmaps"
    name = ROOT_CA_CONFIGMAP
    restored = ("data",)

    def __init__(self, store: Store, ca_pem: str) -> None:
        super().__init__(store)
        self._ca_pem = ca_pem

    def desired(self, namespace: str) -> dict[str, Any]:
        """The namespace's kube-root-ca.crt ConfigMap."""
        return {
            "metadata": {
                "name": self.name,
                "namespace": namespace,
                "annotations": {ROOT_CA_DESCRIPTION_ANNOTATION: _ROOT_CA_DESCRIPTION},
            },
            "data": {"ca.crt": self._ca_pem},
        }


def api_server_service(port: int) -> dict[str, Any]:
    """The `kubernetes` Service, as kube-apiserver keeps it in `default`: no selector, port
    `https` 443 (its Endpoints name the API server), reached on the API server's `port`."""
    https = {"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}
    return {
        "metadata": {
            "name": API_SERVICE_NAME,
            "namespace": API_SERVICE_NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": API_SERVICE_IP,
            "ports": [https],
            "sessionAffinity": "None",
        },
    }


def api_server_endpoints(port: int) -> dict[str, Any]:
    """The `kubernetes` Service's Endpoints: the API server's HTTPS listener."""
    return {
        "metadata": {
            "name": API_SERVICE_NAME,
            "namespace": API_SERVICE_NAMESPACE,
            # kube-apiserver keeps EndpointSlices of its own, so these are not mirrored.
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [
            {
                "addresses": [{"ip": "127.0.0.1"}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        ],
    }


def api_server_endpoint_slice(port: int) -> dict[str, Any]:
    """The `kubernetes` Service's EndpointSlice, which kube-apiserver keeps itself (named as the
    Service, not generated)."""
    return {
        "metadata": {
            "name": API_SERVICE_NAME,
            "namespace": API_SERVICE_NAMESPACE,
            "labels": {"kubernetes.io/service-name": API_SERVICE_NAME},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


class ApiServerServiceController(Controller):
    """Keeps the `kubernetes` Service, its Endpoints and EndpointSlice pointing at the API
    server's port, as kube-apiserver's bootstrap controller does: recreated if deleted,
    restored if changed."""

    resource = ("", "services")

    def __init__(self, store: Store, port: int) -> None:
        super().__init__(store)
        self._port = port

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """The API server's Endpoints and EndpointSlice."""
        return [
            ("", "endpoints", _api_service_key),
            (DISCOVERY_GROUP, "endpointslices", _api_service_key),
        ]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Create or restore the Service, its Endpoints and its EndpointSlice."""
        if (namespace, name) == (API_SERVICE_NAMESPACE, API_SERVICE_NAME):
            ensure_api_server_service(self.store, self._port)
        return None


def ensure_api_server_service(store: Store, port: int) -> None:
    """Create the `kubernetes` Service, Endpoints and EndpointSlice for an API server on
    `port`, or restore their ports and addresses."""
    _create_or_restore(store, "", "services", api_server_service(port), (("spec", "ports"),))
    _create_or_restore(store, "", "endpoints", api_server_endpoints(port), (("subsets",),))
    _create_or_restore(
        store,
        DISCOVERY_GROUP,
        "endpointslices",
        api_server_endpoint_slice(port),
        (("addressType",), ("endpoints",), ("ports",)),
    )


def _create_or_restore(
    store: Store,
    group: str,
    plural: str,
    wanted: dict[str, Any],
    fields: tuple[tuple[str, ...], ...],
) -> None:
    """Create `wanted`, or put back the values of its fields at the given paths if they
    changed."""
    current = find(store, group, plural, API_SERVICE_NAMESPACE, API_SERVICE_NAME)
    if current is None:
        store.create(group, plural, API_SERVICE_NAMESPACE, wanted)
        return
    updated = json_copy(current)
    for *parents, field in fields:
        target, source = updated, wanted
        for parent in parents:
            target, source = target.setdefault(parent, {}), source[parent]
        target[field] = source[field]
    if updated != current:
        store.replace(group, plural, API_SERVICE_NAMESPACE, API_SERVICE_NAME, updated)


def _api_service_key(obj: dict[str, Any]) -> list[Key]:
    metadata = obj.get("metadata") or {}
    key = (metadata.get("namespace", ""), metadata.get("name", ""))
    return [key] if key == (API_SERVICE_NAMESPACE, API_SERVICE_NAME) else []


def _is_live(obj: dict[str, Any] | None) -> bool:
    return obj is not None and not is_deleting(obj)
