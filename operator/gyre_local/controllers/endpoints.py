"""The Endpoints controller: one Endpoints object per selector Service, from its pods."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gyre_local.controllers.objects import is_deleting, pod_ready, pod_terminal
from gyre_local.controllers.reconciler import Controller, Key
from gyre_local.kubelet.state import NODE_NAME
from gyre_local.store.selectors import labels_match, parse_label_selector
from gyre_local.store.store import ApiError


def selector_string(selector: dict[str, str]) -> str:
    """A Service's selector map as a label selector string."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def target_port(service_port: dict[str, Any], pod: dict[str, Any]) -> int | None:
    """The pod port a Service port targets (by number, or by container port name)."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


class EndpointsController(Controller):
    """Keeps each Service's Endpoints equal to its selected pods' addresses and ports."""

    resource = ("", "services")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """Pods, mapped to the Services that select them or list them."""
        return [("", "pods", self._services_of)]

    def _services_of(self, pod: dict[str, Any]) -> list[Key]:
        metadata = pod.get("metadata") or {}
        namespace, labels = metadata.get("namespace", ""), metadata.get("labels") or {}
        services, _ = self.store.list("", "services", namespace)
        keys = {
            (namespace, s["metadata"]["name"])
            for s in services
            if (s.get("spec") or {}).get("selector")
            and labels_match(parse_label_selector(selector_string(s["spec"]["selector"])), labels)
        }
        # A pod whose labels changed no longer matches: the Services listing it must look again.
        endpoints, _ = self.store.list("", "endpoints", namespace)
        for item in endpoints:
            for subset in item.get("subsets") or []:
                addresses = (subset.get("addresses") or []) + (
                    subset.get("notReadyAddresses") or []
                )
                if any(
                    (a.get("targetRef") or {}).get("uid") == metadata.get("uid") for a in addresses
                ):
                    keys.add((namespace, item["metadata"]["name"]))
        return sorted(keys)

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Write the Service's Endpoints (or delete them with the Service)."""
        try:
            service = self.store.get("", "services", namespace, name)
        except ApiError as error:
            if error.code != 404:
                raise
            self._delete(namespace, name)
            return None
        selector = (service.get("spec") or {}).get("selector")
        if not selector or is_deleting(service):
            return None
        pods, _ = self.store.list("", "pods", namespace, label_selector=selector_string(selector))
        subsets = self._subsets(service, pods)
        endpoints: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(service["metadata"].get("labels") or {}),
            },
            "subsets": subsets,
        }
        try:
            current = self.store.get("", "endpoints", namespace, name)
        except ApiError as error:
            if error.code != 404:
                raise
            self.store.create("", "endpoints", namespace, endpoints)
            return None
        labels = endpoints["metadata"]["labels"]
        if (current.get("subsets") or []) != subsets or current["metadata"].get("labels") != labels:
            current["subsets"] = subsets
            current["metadata"]["labels"] = labels
            self.store.replace("", "endpoints", namespace, name, current)
        return None

    @staticmethod
    def _subsets(service: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        spec = service.get("spec") or {}
        publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
        groups: dict[tuple[tuple[str, int, str], ...], dict[str, list[dict[str, Any]]]] = {}
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            if pod_terminal(pod) or is_deleting(pod) or not (pod.get("status") or {}).get("podIP"):
                continue
            ports: list[tuple[str, int, str]] = []
            for service_port in spec.get("ports") or []:
                number = target_port(service_port, pod)
                if number is not None:
                    protocol = service_port.get("protocol", "TCP")
                    ports.append((service_port.get("name", ""), number, protocol))
            if not ports:
                continue
            address = {
                "ip": pod["status"]["podIP"],
                "nodeName": NODE_NAME,
                "targetRef": {
                    "kind": "Pod",
                    "namespace": pod["metadata"]["namespace"],
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"]["uid"],
                },
            }
            group = groups.setdefault(tuple(ports), {"addresses": [], "notReadyAddresses": []})
            ready = pod_ready(pod) or publish_not_ready
            group["addresses" if ready else "notReadyAddresses"].append(address)
        subsets = []
        for port_set, addresses in groups.items():
            subset: dict[str, Any] = {
                "ports": [
                    {**({"name": n} if n else {}), "port": number, "protocol": protocol}
                    for n, number, protocol in port_set
                ]
            }
            subset.update({k: v for k, v in addresses.items() if v})
            subsets.append(subset)
        return subsets

    def _delete(self, namespace: str, name: str) -> None:
        try:
            self.store.delete("", "endpoints", namespace, name)
        except ApiError as error:
            if error.code != 404:
                raise
