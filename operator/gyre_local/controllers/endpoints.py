"""The Endpoints controller: per selector Service one Endpoints object and its EndpointSlices
(discovery.k8s.io/v1), from its pods."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gyre_local.controllers.objects import is_deleting, owner_reference, pod_ready, pod_terminal
from gyre_local.controllers.reconciler import Controller, Key
from gyre_local.kubelet.state import NODE_NAME
from gyre_local.store.selectors import labels_match, parse_label_selector
from gyre_local.store.store import ApiError

DISCOVERY_GROUP = "discovery.k8s.io"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"

# A Service port resolved for one pod: (name, port, protocol).
PortTuple = tuple[str, int, str]


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


def pod_ports(service: dict[str, Any], pod: dict[str, Any]) -> tuple[PortTuple, ...]:
    """The Service's ports as this pod serves them (a named target the pod lacks is left out)."""
    ports: list[PortTuple] = []
    for service_port in (service.get("spec") or {}).get("ports") or []:
        number = target_port(service_port, pod)
        if number is not None:
            ports.append(
                (service_port.get("name", ""), number, service_port.get("protocol", "TCP"))
            )
    return tuple(ports)


def _has_address(pod: dict[str, Any]) -> bool:
    """Whether a pod can be an endpoint at all: not finished, and given an IP."""
    return not pod_terminal(pod) and bool((pod.get("status") or {}).get("podIP"))


def _target_ref(pod: dict[str, Any]) -> dict[str, Any]:
    metadata = pod["metadata"]
    return {
        "kind": "Pod",
        "namespace": metadata["namespace"],
        "name": metadata["name"],
        "uid": metadata["uid"],
    }


def slice_endpoint(service: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
    """A pod as an EndpointSlice endpoint, with the conditions the EndpointSlice controller
    gives it: a terminating pod is never ready (unless the Service publishes not-ready
    addresses) but stays serving while its readiness holds."""
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    serving = publish_not_ready or pod_ready(pod)
    terminating = is_deleting(pod)
    endpoint: dict[str, Any] = {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {
            "ready": publish_not_ready or (serving and not terminating),
            "serving": serving,
            "terminating": terminating,
        },
    }
    pod_spec = pod.get("spec") or {}
    if pod_spec.get("hostname") and pod_spec.get("subdomain") == service["metadata"]["name"]:
        endpoint["hostname"] = pod_spec["hostname"]
    endpoint["nodeName"] = NODE_NAME
    endpoint["targetRef"] = _target_ref(pod)
    return endpoint


def endpoint_slices(
    service: dict[str, Any], pods: list[dict[str, Any]]
) -> dict[tuple[PortTuple, ...], list[dict[str, Any]]]:
    """The endpoints of a Service grouped by the port set their pods serve, as the
    EndpointSlice controller slices them (one empty group when there are none: the
    placeholder slice)."""
    groups: dict[tuple[PortTuple, ...], list[dict[str, Any]]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        ports = pod_ports(service, pod)
        if _has_address(pod) and ports:
            groups.setdefault(ports, []).append(slice_endpoint(service, pod))
    return groups or {(): []}


def slice_labels(service: dict[str, Any]) -> dict[str, str]:
    """A Service's labels and the ones marking its slices as the controller's."""
    labels = dict(service["metadata"].get("labels") or {})
    labels[SERVICE_NAME_LABEL] = service["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = SLICE_CONTROLLER
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


def slice_ports(ports: tuple[PortTuple, ...]) -> list[dict[str, Any]] | None:
    """A slice's ports (null for the placeholder slice, as a real server returns it)."""
    if not ports:
        return None
    return [
        {"name": name, "port": number, "protocol": protocol} for name, number, protocol in ports
    ]


def _slice_key(endpoint_slice: dict[str, Any]) -> tuple[PortTuple, ...]:
    """The port set of a stored slice."""
    return tuple(
        (str(p.get("name") or ""), int(p["port"]), str(p.get("protocol") or "TCP"))
        for p in endpoint_slice.get("ports") or []
    )


def _slice_service(endpoint_slice: dict[str, Any]) -> list[Key]:
    """A source mapper: a managed EndpointSlice -> the key of its Service."""
    metadata = endpoint_slice.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != SLICE_CONTROLLER or SERVICE_NAME_LABEL not in labels:
        return []
    return [(metadata.get("namespace", ""), labels[SERVICE_NAME_LABEL])]


class EndpointsController(Controller):
    """Keeps each Service's Endpoints and EndpointSlices equal to its selected pods' addresses
    and ports."""

    resource = ("", "services")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """Pods, mapped to the Services that select them or list them; the Services' slices."""
        return [
            ("", "pods", self._services_of),
            (DISCOVERY_GROUP, "endpointslices", _slice_service),
        ]

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
            # The Service's slices go with it: they are owned by it.
            self._delete("", "endpoints", namespace, name)
            return None
        selector = (service.get("spec") or {}).get("selector")
        if not selector or is_deleting(service):
            return None
        pods, _ = self.store.list("", "pods", namespace, label_selector=selector_string(selector))
        self._write_slices(service, pods)
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
        groups: dict[tuple[PortTuple, ...], dict[str, list[dict[str, Any]]]] = {}
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            ports = pod_ports(service, pod)
            if not _has_address(pod) or is_deleting(pod) or not ports:
                continue
            address = {"ip": pod["status"]["podIP"], "nodeName": NODE_NAME}
            address["targetRef"] = _target_ref(pod)
            group = groups.setdefault(ports, {"addresses": [], "notReadyAddresses": []})
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

    def _write_slices(self, service: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        """Create, update and delete the Service's slices (found by their labels, so never
        duplicated) to hold one slice per port set."""
        metadata = service["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        selector = f"{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={SLICE_CONTROLLER}"
        existing, _ = self.store.list(
            DISCOVERY_GROUP, "endpointslices", namespace, label_selector=selector
        )
        current = {_slice_key(s): s for s in existing if not is_deleting(s)}
        labels = slice_labels(service)
        for ports, endpoints in endpoint_slices(service, pods).items():
            wanted = {
                "addressType": "IPv4",
                "endpoints": endpoints or None,
                "ports": slice_ports(ports),
            }
            stored = current.pop(ports, None)
            if stored is None:
                body = {
                    "apiVersion": f"{DISCOVERY_GROUP}/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "generateName": f"{name}-",
                        "namespace": namespace,
                        "labels": labels,
                        "ownerReferences": [owner_reference(service)],
                    },
                    **wanted,
                }
                self.store.create(DISCOVERY_GROUP, "endpointslices", namespace, body)
            elif any(stored.get(k) != v for k, v in wanted.items()) or (
                stored["metadata"].get("labels") != labels
            ):
                stored.update(wanted)
                stored["metadata"]["labels"] = labels
                slice_name = stored["metadata"]["name"]
                self.store.replace(DISCOVERY_GROUP, "endpointslices", namespace, slice_name, stored)
        for stale in current.values():
            self._delete(DISCOVERY_GROUP, "endpointslices", namespace, stale["metadata"]["name"])

    def _delete(self, group: str, plural: str, namespace: str, name: str) -> None:
        try:
            self.store.delete(group, plural, namespace, name)
        except ApiError as error:
            if error.code != 404:
                raise
