"""Server-side Table output (`Accept: ...;as=Table`): the columns `kubectl get` prints.

Built-in kinds get the columns and cells of kube-apiserver's printers
(pkg/printers/internalversion/printers.go), always generated wide as the server does:
kubectl shows priority-1 columns only with `-o wide`. Kinds without a printer get the default
table converter's Name and Created At. Custom resources get their additionalPrinterColumns,
or Age when they declare none, as apiextensions-apiserver builds them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from gyre_local.apiserver import openapi
from gyre_local.clock import format_rfc3339, parse_rfc3339
from gyre_local.store.store import ResourceType, Store

_PATH_TOKEN = re.compile(
    r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)==\"([^\"]*)\"\)\]"
)
_NONE = "<none>"
_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)
_MAX_ENDPOINTS = 3
_DEFAULT_STORAGE_CLASS = "storageclass.kubernetes.io/is-default-class"
_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"

Obj = dict[str, Any]


class Column(NamedTuple):
    """One column definition of a Table."""

    name: str
    type: str = "string"
    priority: int = 0
    format: str = ""


@dataclass(frozen=True)
class _Printer:
    columns: list[Column]
    cells: Callable[[Obj], list[Any]]
    conditions: Callable[[Obj], list[Obj]] = lambda _obj: []


def _json_path(obj: Any, expression: str) -> Any:
    """Evaluate the simple JSONPath subset used by printer columns."""
    current: list[Any] = [obj]
    for field_name, index, filter_field, filter_value in _PATH_TOKEN.findall(expression):
        following: list[Any] = []
        for value in current:
            if field_name and isinstance(value, dict) and field_name in value:
                following.append(value[field_name])
            elif index and isinstance(value, list) and int(index) < len(value):
                following.append(value[int(index)])
            elif filter_field and isinstance(value, list):
                following.extend(
                    item
                    for item in value
                    if isinstance(item, dict) and str(item.get(filter_field)) == filter_value
                )
        current = following
    return current[0] if current else None


# ---- formatting helpers shared by the printers ----


def human_duration(seconds: float) -> str:
    """A duration as kubectl shows it (apimachinery's duration.HumanDuration)."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes, hours = whole // 60, whole // 3600
    if minutes < 10:
        return _joined(minutes, "m", whole % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return _joined(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return _joined(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return _joined(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _joined(major: int, major_unit: str, minor: int, minor_unit: str) -> str:
    return f"{major}{major_unit}{minor}{minor_unit}" if minor else f"{major}{major_unit}"


def _since(timestamp: str | None) -> str:
    """The age of a timestamp (translateTimestampSince): `<unknown>` when unset."""
    if not timestamp:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - parse_rfc3339(timestamp)).total_seconds())


def _age(obj: Obj) -> str:
    return _since(obj["metadata"].get("creationTimestamp"))


def _created_at(obj: Obj) -> str:
    """The creation time in RFC 3339, the default table converter's `Created At`."""
    created = obj["metadata"].get("creationTimestamp")
    return format_rfc3339(parse_rfc3339(created)) if created else ""


def _format_labels(labels: dict[str, str] | None) -> str:
    """labels.FormatLabels: sorted `k=v` pairs, `<none>` when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or _NONE


def _selector_string(selector: Obj | None) -> str:
    """metav1.LabelSelectorAsSelector(...).String(): requirements sorted by key."""
    if not selector:
        return ""
    requirements = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = ",".join(sorted(expression.get("values") or []))
        text = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }[operator]
        requirements.append((key, text))
    return ",".join(text for _, text in sorted(requirements, key=lambda r: r[0]))


def _format_selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector: the selector string, `<none>` when it selects everything."""
    return _selector_string(selector) or _NONE


def _has_condition(obj: Obj, condition_type: str) -> bool:
    """Whether the object's first condition of a type is True."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    first: Obj = next((c for c in conditions if c.get("type") == condition_type), {})
    return first.get("status") == "True"


# ---- pods ----


def _restartable_init(container: Obj | None) -> bool:
    return bool(container) and (container or {}).get("restartPolicy") == "Always"


def _finished_at(container_status: Obj) -> str:
    terminated = (container_status.get("lastState") or {}).get("terminated") or {}
    return str(terminated.get("finishedAt") or "")


def _later(first: str, second: str) -> str:
    if not first or not second:
        return first or second
    return second if parse_rfc3339(second) > parse_rfc3339(first) else first


def _terminated_reason(terminated: Obj, prefix: str) -> str:
    if terminated.get("reason"):
        return f"{prefix}{terminated['reason']}"
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


@dataclass
class _PodSummary:
    reason: str
    ready: int = 0
    restarts: int = 0
    last_restart: str = ""


def _pod_init_containers(pod: Obj, summary: _PodSummary) -> tuple[bool, int, str]:
    """Walk the init containers: whether the pod is still initializing, and the restarts and
    last restart time of its restartable (sidecar) init containers."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    declared = {c["name"]: c for c in spec.get("initContainers") or []}
    sidecar_restarts, sidecar_last = 0, ""
    for position, container in enumerate(status.get("initContainerStatuses") or []):
        sidecar = _restartable_init(declared.get(container.get("name", "")))
        count = int(container.get("restartCount", 0))
        summary.restarts += count
        summary.last_restart = _later(summary.last_restart, _finished_at(container))
        if sidecar:
            sidecar_restarts += count
            sidecar_last = _later(sidecar_last, _finished_at(container))
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting") or {}
        if terminated is not None and int(terminated.get("exitCode", 0)) == 0:
            continue
        if sidecar and container.get("started"):
            summary.ready += 1 if container.get("ready") else 0
            continue
        if terminated is not None:
            summary.reason = _terminated_reason(terminated, "Init:")
        elif waiting.get("reason") and waiting["reason"] != "PodInitializing":
            summary.reason = f"Init:{waiting['reason']}"
        else:
            summary.reason = f"Init:{position}/{len(declared)}"
        return True, sidecar_restarts, sidecar_last
    return False, sidecar_restarts, sidecar_last


def _pod_summary(pod: Obj) -> _PodSummary:
    """READY, STATUS and RESTARTS as printPod computes them."""
    status = pod.get("status") or {}
    summary = _PodSummary(str(status.get("reason") or status.get("phase") or ""))
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            summary.reason = "SchedulingGated"
    initializing, sidecar_restarts, sidecar_last = _pod_init_containers(pod, summary)
    if not initializing or _has_condition(pod, "Initialized"):
        summary.restarts, summary.last_restart = sidecar_restarts, sidecar_last
        running = False
        for container in reversed(status.get("containerStatuses") or []):
            summary.restarts += int(container.get("restartCount", 0))
            summary.last_restart = _later(summary.last_restart, _finished_at(container))
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting") or {}, state.get("terminated")
            if waiting.get("reason"):
                summary.reason = waiting["reason"]
            elif terminated is not None:
                summary.reason = _terminated_reason(terminated, "")
            elif container.get("ready") and state.get("running") is not None:
                running = True
                summary.ready += 1
        if summary.reason == "Completed" and running:
            summary.reason = "Running" if _has_condition(pod, "Ready") else "NotReady"
    if pod["metadata"].get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            summary.reason = "Unknown"
        elif status.get("phase") not in ("Succeeded", "Failed"):
            summary.reason = "Terminating"
    return summary


def _pod_cells(pod: Obj) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    summary = _pod_summary(pod)
    total = len(spec.get("containers") or []) + sum(
        1 for c in spec.get("initContainers") or [] if _restartable_init(c)
    )
    restarts = str(summary.restarts)
    if summary.restarts and summary.last_restart:
        restarts = f"{summary.restarts} ({_since(summary.last_restart)} ago)"
    pod_ips = status.get("podIPs") or []
    gates = spec.get("readinessGates") or []
    readiness = _NONE
    if gates:
        true_gates = sum(1 for g in gates if _has_condition(pod, g.get("conditionType", "")))
        readiness = f"{true_gates}/{len(gates)}"
    return [
        f"{summary.ready}/{total}",
        summary.reason,
        restarts,
        _age(pod),
        (pod_ips[0].get("ip") if pod_ips else "") or _NONE,
        spec.get("nodeName") or _NONE,
        status.get("nominatedNodeName") or _NONE,
        readiness,
    ]


def _pod_conditions(pod: Obj) -> list[Obj]:
    """Row conditions marking a finished pod, as printPod sets them."""
    messages = {"Succeeded": "The pod has completed successfully.", "Failed": "The pod failed."}
    phase = (pod.get("status") or {}).get("phase")
    if phase not in messages:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": messages[phase]}]


# ---- services and endpoints ----


def _balancer_addresses(obj: Obj) -> list[str]:
    """loadBalancerStatusStringer: the sorted, distinct IPs (else hostnames) of the ingress."""
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return sorted({i.get("ip") or i.get("hostname") for i in ingress} - {None, ""})


def _service_external_ip(service: Obj) -> str:
    spec = service.get("spec") or {}
    external = list(spec.get("externalIPs") or [])
    service_type = spec.get("type", "ClusterIP")
    if service_type in ("ClusterIP", "NodePort"):
        return ",".join(external) or _NONE
    if service_type == "LoadBalancer":
        return ",".join([*_balancer_addresses(service), *external]) or "<pending>"
    if service_type == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def _service_cells(service: Obj) -> list[Any]:
    spec = service.get("spec") or {}
    ports = [
        f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort")
        else f"{p['port']}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    ]
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [
        spec.get("type", ""),
        cluster_ips[0] if cluster_ips else _NONE,
        _service_external_ip(service),
        ",".join(ports) or _NONE,
        _age(service),
        _format_labels(spec.get("selector")),
    ]


def _endpoints_cell(endpoints: Obj) -> str:
    """formatEndpoints: the first three address:port pairs and how many more."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return _NONE
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [a["ip"] for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        pairs = [
            f"[{ip}]:{p['port']}" if ":" in ip else f"{ip}:{p['port']}"
            for p in ports
            for ip in addresses
        ]
        candidates = pairs if ports else addresses
        count += len(candidates)
        shown.extend(candidates[: _MAX_ENDPOINTS - len(shown)])
    text = ",".join(shown)
    return f"{text} + {count - _MAX_ENDPOINTS} more..." if count > _MAX_ENDPOINTS else text


def _listed(items: list[str], count: int) -> str:
    """listWithMoreString: the first three items and how many more, `<unset>` for none."""
    if count > _MAX_ENDPOINTS:
        return f"{','.join(items[:_MAX_ENDPOINTS])} + {count - _MAX_ENDPOINTS} more..."
    return ",".join(items) or "<unset>"


def _slice_ports_cell(endpoint_slice: Obj) -> str:
    """formatDiscoveryPorts: port numbers (else names, else `*`)."""
    shown = [_slice_port(port) for port in endpoint_slice.get("ports") or []]
    return _listed(shown, len(shown))


def _slice_port(port: Obj) -> str:
    if port.get("port") is not None:
        return str(port["port"])
    return "*" if port.get("name") is None else str(port["name"])


def _slice_endpoints_cell(endpoint_slice: Obj) -> str:
    """formatDiscoveryEndpoints: every address of every endpoint."""
    addresses = [
        str(address)
        for endpoint in endpoint_slice.get("endpoints") or []
        for address in endpoint.get("addresses") or []
    ]
    return _listed(addresses, len(addresses))


# ---- workloads ----


def _status_int(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def _wide_workload(pod_spec: Obj | None, selector: str) -> list[Any]:
    """The wide CONTAINERS, IMAGES (layoutContainerCells) and SELECTOR cells of a workload."""
    containers = (pod_spec or {}).get("containers") or []
    names = ",".join(c.get("name", "") for c in containers)
    return [names, ",".join(c.get("image", "") for c in containers), selector]


def _deployment_cells(deployment: Obj) -> list[Any]:
    spec = deployment.get("spec") or {}
    return [
        f"{_status_int(deployment, 'readyReplicas')}/{int(spec.get('replicas') or 0)}",
        _status_int(deployment, "updatedReplicas"),
        _status_int(deployment, "availableReplicas"),
        _age(deployment),
        *_wide_workload(_json_path(spec, ".template.spec"), _selector_string(spec.get("selector"))),
    ]


def _replica_set_cells(replica_set: Obj) -> list[Any]:
    spec = replica_set.get("spec") or {}
    return [
        int(spec.get("replicas") or 0),
        _status_int(replica_set, "replicas"),
        _status_int(replica_set, "readyReplicas"),
        _age(replica_set),
        *_wide_workload(_json_path(spec, ".template.spec"), _format_selector(spec.get("selector"))),
    ]


def _stateful_set_cells(stateful_set: Obj) -> list[Any]:
    spec = stateful_set.get("spec") or {}
    containers = _wide_workload(_json_path(spec, ".template.spec"), "")[:2]
    ready = f"{_status_int(stateful_set, 'readyReplicas')}/{int(spec.get('replicas') or 0)}"
    return [ready, _age(stateful_set), *containers]


def _daemon_set_cells(daemon_set: Obj) -> list[Any]:
    spec = daemon_set.get("spec") or {}
    counts = [
        _status_int(daemon_set, field)
        for field in (
            "desiredNumberScheduled",
            "currentNumberScheduled",
            "numberReady",
            "updatedNumberScheduled",
            "numberAvailable",
        )
    ]
    return [
        *counts,
        _format_labels(_json_path(spec, ".template.spec.nodeSelector")),
        _age(daemon_set),
        *_wide_workload(_json_path(spec, ".template.spec"), _format_selector(spec.get("selector"))),
    ]


def _controller_revision_cells(revision: Obj) -> list[Any]:
    """The revision's controller as `kind.group/name` (formatResourceName), its number."""
    owner = next(
        (r for r in revision["metadata"].get("ownerReferences") or [] if r.get("controller")),
        None,
    )
    controller = _NONE
    if owner is not None:
        group = str(owner.get("apiVersion", "")).rpartition("/")[0]
        kind = f"{owner.get('kind', '')}.{group}" if group else str(owner.get("kind", ""))
        controller = f"{kind.lower()}/{owner.get('name', '')}"
    return [controller, int(revision.get("revision") or 0), _age(revision)]


_JOB_STATUS_CONDITIONS = (
    ("Complete", "Complete"),
    ("Failed", "Failed"),
    ("", "Terminating"),  # deletionTimestamp, checked in this order by printJob
    ("Suspended", "Suspended"),
    ("FailureTarget", "FailureTarget"),
)


def _job_status(job: Obj) -> str:
    for condition, shown in _JOB_STATUS_CONDITIONS:
        if condition and _has_condition(job, condition):
            return shown
        if not condition and job["metadata"].get("deletionTimestamp"):
            return shown
    return "Running"


def _job_cells(job: Obj) -> list[Any]:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    parallelism = int(spec.get("parallelism") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif parallelism > 1:
        completions = f"{succeeded}/1 of {parallelism}"
    else:
        completions = f"{succeeded}/1"
    duration = ""
    if status.get("startTime"):
        start = parse_rfc3339(status["startTime"])
        end = parse_rfc3339(status["completionTime"]) if status.get("completionTime") else None
        duration = human_duration(((end or datetime.now(UTC)) - start).total_seconds())
    return [
        _job_status(job),
        completions,
        duration,
        _age(job),
        *_wide_workload(_json_path(spec, ".template.spec"), _format_selector(spec.get("selector"))),
    ]


def _cron_job_cells(cron_job: Obj) -> list[Any]:
    spec, status = cron_job.get("spec") or {}, cron_job.get("status") or {}
    suspend = spec.get("suspend")
    job_spec = _json_path(spec, ".jobTemplate.spec") or {}
    return [
        spec.get("schedule", ""),
        spec.get("timeZone") or _NONE,
        "<unset>" if suspend is None else str(bool(suspend)),  # printBoolPtr
        len(status.get("active") or []),
        _since(status["lastScheduleTime"]) if status.get("lastScheduleTime") else _NONE,
        _age(cron_job),
        *_wide_workload(
            _json_path(job_spec, ".template.spec"),
            _format_selector(job_spec.get("selector")),
        ),
    ]


# ---- events ----


def _core_event(event: Obj) -> Obj:
    """An events.k8s.io/v1 Event in core/v1 field names (the printer reads the core shape)."""
    if not str(event.get("apiVersion", "")).startswith("events.k8s.io/"):
        return event
    renamed = {
        "regarding": "involvedObject",
        "note": "message",
        "deprecatedSource": "source",
        "deprecatedFirstTimestamp": "firstTimestamp",
        "deprecatedLastTimestamp": "lastTimestamp",
        "deprecatedCount": "count",
    }
    return {renamed.get(key, key): value for key, value in event.items()}


def _event_cells(event: Obj) -> list[Any]:
    event = _core_event(event)
    first_seen = _since(event.get("firstTimestamp") or event.get("eventTime"))
    last_seen = _since(event["lastTimestamp"]) if event.get("lastTimestamp") else first_seen
    count = int(event.get("count") or 0) or 1
    if event.get("series"):
        last_seen = _since(event["series"].get("lastObservedTime"))
        count = int(event["series"].get("count") or 0)
    involved = event.get("involvedObject") or {}
    target = str(involved.get("kind", "")).lower()
    if involved.get("name"):
        target = f"{target}/{involved['name']}"
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingController") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    return [
        last_seen,
        event.get("type", ""),
        event.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        str(event.get("message", "")).strip(),
        first_seen,
        count,
        event["metadata"]["name"],
    ]


# ---- configuration and storage ----


def _unset_if_none(value: Any) -> Any:
    return "<unset>" if value is None else value


def _access_modes(modes: list[str] | None) -> str:
    """GetAccessModesAsString: the short forms, in their fixed order."""
    given = set(modes or [])
    return ",".join(short for mode, short in _ACCESS_MODES if mode in given)


def _volume_cells(volume: Obj) -> list[Any]:
    spec, status = volume.get("spec") or {}, volume.get("status") or {}
    claim = spec.get("claimRef")
    phase = "Terminating" if volume["metadata"].get("deletionTimestamp") else status.get("phase")
    return [
        str((spec.get("capacity") or {}).get("storage", "")),
        _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        phase or "",
        f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else "",
        _storage_class_of(volume),
        _unset_if_none(spec.get("volumeAttributesClassName")),
        status.get("reason", ""),
        _age(volume),
        _unset_if_none(spec.get("volumeMode")),
    ]


def _storage_class_of(obj: Obj) -> str:
    """GetPersistentVolume(Claim)Class: the beta annotation, else storageClassName."""
    annotations = obj["metadata"].get("annotations") or {}
    return str(
        annotations.get(_BETA_STORAGE_CLASS, (obj.get("spec") or {}).get("storageClassName") or "")
    )


def _claim_cells(claim: Obj) -> list[Any]:
    spec, status = claim.get("spec") or {}, claim.get("status") or {}
    phase = "Terminating" if claim["metadata"].get("deletionTimestamp") else status.get("phase")
    capacity = access = ""
    if spec.get("volumeName"):
        capacity = str((status.get("capacity") or {}).get("storage", ""))
        access = _access_modes(status.get("accessModes"))
    return [
        phase or "",
        spec.get("volumeName", ""),
        capacity,
        access,
        _storage_class_of(claim),
        _unset_if_none(spec.get("volumeAttributesClassName")),
        _age(claim),
        _unset_if_none(spec.get("volumeMode")),
    ]


def _storage_class_cells(storage_class: Obj) -> list[Any]:
    return [
        storage_class.get("provisioner", ""),
        storage_class.get("reclaimPolicy") or "Delete",
        storage_class.get("volumeBindingMode") or "Immediate",
        bool(storage_class.get("allowVolumeExpansion")),
        _age(storage_class),
    ]


def _storage_class_name(storage_class: Obj) -> str:
    name = str(storage_class["metadata"]["name"])
    annotations = storage_class["metadata"].get("annotations") or {}
    return f"{name} (default)" if annotations.get(_DEFAULT_STORAGE_CLASS) == "true" else name


def _quota_cells(quota: Obj) -> list[Any]:
    """REQUEST and LIMIT: `resource: used/hard` of each hard limit, `limits.*` ones apart."""
    status = quota.get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        column = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        column.append(f"{resource}: {used.get(resource, '0')}/{hard[resource]}")
    return [", ".join(requests), ", ".join(limits), _age(quota)]


# ---- RBAC, policy and networking ----


def _binding_cells(binding: Obj) -> list[Any]:
    """A (Cluster)RoleBinding: its role, and its users, groups and service accounts."""
    role = binding.get("roleRef") or {}
    subjects = binding.get("subjects") or []

    def named(kind: str) -> str:
        return ", ".join(s["name"] for s in subjects if s.get("kind") == kind)

    accounts = ", ".join(
        f"{s.get('namespace', '')}/{s['name']}"
        for s in subjects
        if s.get("kind") == "ServiceAccount"
    )
    return [
        f"{role.get('kind', '')}/{role.get('name', '')}",
        _age(binding),
        named("User"),
        named("Group"),
        accounts,
    ]


def _budget_cells(budget: Obj) -> list[Any]:
    spec = budget.get("spec") or {}
    return [
        str(spec["minAvailable"]) if spec.get("minAvailable") is not None else "N/A",
        str(spec["maxUnavailable"]) if spec.get("maxUnavailable") is not None else "N/A",
        _status_int(budget, "disruptionsAllowed"),
        _age(budget),
    ]


def _ingress_hosts(ingress: Obj) -> str:
    """formatHosts: the first three rule hosts and how many rules more, `*` for none."""
    rules = _json_path(ingress, ".spec.rules") or []
    hosts: list[str] = []
    more = False
    for rule in rules:
        more = more or len(hosts) == _MAX_ENDPOINTS
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - _MAX_ENDPOINTS} more..." if more else text


def _ingress_cells(ingress: Obj) -> list[Any]:
    return [
        _json_path(ingress, ".spec.ingressClassName") or _NONE,
        _ingress_hosts(ingress),
        ",".join(_balancer_addresses(ingress)),
        "80, 443" if _json_path(ingress, ".spec.tls") else "80",
        _age(ingress),
    ]


def _ingress_class_parameters(ingress_class: Obj) -> str:
    parameters = _json_path(ingress_class, ".spec.parameters")
    if not parameters:
        return _NONE
    kind = parameters.get("kind", "")
    if parameters.get("apiGroup") is not None:
        kind = f"{kind}.{parameters['apiGroup']}"
    return f"{kind}/{parameters.get('name', '')}"


# ---- nodes and autoscaling ----

_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"


def _node_cells(node: Obj) -> list[Any]:
    status = node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    states = [
        "Unknown" if ready is None else "Ready" if ready.get("status") == "True" else "NotReady"
    ]
    if _json_path(node, ".spec.unschedulable"):
        states.append("SchedulingDisabled")
    labels = node["metadata"].get("labels") or {}
    roles = {k.removeprefix(_NODE_ROLE_PREFIX) for k in labels if k.startswith(_NODE_ROLE_PREFIX)}
    roles |= {labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()
    info = status.get("nodeInfo") or {}
    addresses = status.get("addresses") or []

    def address(kind: str) -> str:
        return next((str(a["address"]) for a in addresses if a.get("type") == kind), _NONE)

    return [
        ",".join(states),
        ",".join(sorted(roles - {""})) or _NONE,
        _age(node),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


_HPA_MAX_METRICS = 2


def _hpa_metric(spec: Obj, status: Obj | None) -> str:
    """One metric of formatHPAMetrics: current/target, `<unknown>` before it is measured."""
    kind = spec.get("type", "")
    source_key = kind[0].lower() + kind[1:] if kind else ""
    source, current = spec.get(source_key) or {}, (status or {}).get(source_key) or {}
    target, now = source.get("target") or {}, current.get("current") or {}
    if kind in ("Resource", "ContainerResource"):
        name = source.get("name")
        if target.get("averageValue") is not None:
            return f"{name}: {now.get('averageValue', '<unknown>')}/{target['averageValue']}"
        measured = now.get("averageUtilization")
        wanted = target.get("averageUtilization")
        shown = "<unknown>" if measured is None else f"{measured}%"
        return f"{name}: {shown}/{'<auto>' if wanted is None else f'{wanted}%'}"
    if kind == "Pods":
        return f"{now.get('averageValue', '<unknown>')}/{target.get('averageValue')}"
    if kind in ("Object", "External"):
        if target.get("averageValue") is not None:
            return f"{now.get('averageValue', '<unknown>')}/{target['averageValue']} (avg)"
        return f"{now.get('value', '<unknown>')}/{target.get('value')}"
    return "<unknown type>"


def _hpa_cells(autoscaler: Obj) -> list[Any]:
    spec, status = autoscaler.get("spec") or {}, autoscaler.get("status") or {}
    metrics = spec.get("metrics") or []
    statuses = status.get("currentMetrics") or []
    shown = [
        _hpa_metric(m, statuses[i] if i < len(statuses) else None) for i, m in enumerate(metrics)
    ]
    targets = ", ".join(shown[:_HPA_MAX_METRICS]) or _NONE
    if len(shown) > _HPA_MAX_METRICS:
        targets += f" + {len(shown) - _HPA_MAX_METRICS} more..."
    target = spec.get("scaleTargetRef") or {}
    return [
        f"{target.get('kind', '')}/{target.get('name', '')}",
        targets,
        str(spec["minReplicas"]) if spec.get("minReplicas") is not None else "<unset>",
        int(spec.get("maxReplicas") or 0),
        int(status.get("currentReplicas") or 0),
        _age(autoscaler),
    ]


# ---- the printers ----

_AGE = Column("Age")
_WIDE_WORKLOAD = [
    Column("Containers", priority=1),
    Column("Images", priority=1),
    Column("Selector", priority=1),
]
_CREATED_AT = Column("Created At", "date")


def _named(columns: list[Column], cells: Callable[[Obj], list[Any]], **extra: Any) -> _Printer:
    """A printer whose first column is the object's name."""
    return _Printer(
        [Column("Name", format="name"), *columns],
        lambda obj: [obj["metadata"]["name"], *cells(obj)],
        **extra,
    )


def _aged(*columns: Column, cells: Callable[[Obj], list[Any]]) -> _Printer:
    """A printer of Name, the given columns, then Age."""
    return _named([*columns, _AGE], lambda obj: [*cells(obj), _age(obj)])


_PRINTERS: dict[str, _Printer] = {
    "Pod": _named(
        [
            Column("Ready"),
            Column("Status"),
            Column("Restarts"),
            _AGE,
            Column("IP", priority=1),
            Column("Node", priority=1),
            Column("Nominated Node", priority=1),
            Column("Readiness Gates", priority=1),
        ],
        _pod_cells,
        conditions=_pod_conditions,
    ),
    "Service": _named(
        [
            Column("Type"),
            Column("Cluster-IP"),
            Column("External-IP"),
            Column("Port(s)"),
            _AGE,
            Column("Selector", priority=1),
        ],
        _service_cells,
    ),
    "Endpoints": _aged(Column("Endpoints"), cells=lambda o: [_endpoints_cell(o)]),
    "EndpointSlice": _aged(
        Column("AddressType"),
        Column("Ports"),
        Column("Endpoints"),
        cells=lambda o: [o.get("addressType", ""), _slice_ports_cell(o), _slice_endpoints_cell(o)],
    ),
    "Deployment": _named(
        [Column("Ready"), Column("Up-to-date"), Column("Available"), _AGE, *_WIDE_WORKLOAD],
        _deployment_cells,
    ),
    "ReplicaSet": _named(
        [
            Column("Desired", "integer"),
            Column("Current", "integer"),
            Column("Ready", "integer"),
            _AGE,
            *_WIDE_WORKLOAD,
        ],
        _replica_set_cells,
    ),
    "StatefulSet": _named(
        [
            Column("Ready"),
            _AGE,
            Column("Containers", priority=1),
            Column("Images", priority=1),
        ],
        _stateful_set_cells,
    ),
    "DaemonSet": _named(
        [
            Column("Desired", "integer"),
            Column("Current", "integer"),
            Column("Ready", "integer"),
            Column("Up-to-date", "integer"),
            Column("Available", "integer"),
            Column("Node Selector"),
            _AGE,
            *_WIDE_WORKLOAD,
        ],
        _daemon_set_cells,
    ),
    "ControllerRevision": _named(
        [Column("Controller"), Column("Revision"), _AGE], _controller_revision_cells
    ),
    "Job": _named(
        [Column("Status"), Column("Completions"), Column("Duration"), _AGE, *_WIDE_WORKLOAD],
        _job_cells,
    ),
    "CronJob": _named(
        [
            Column("Schedule"),
            Column("Timezone"),
            Column("Suspend", "boolean"),
            Column("Active", "integer"),
            Column("Last Schedule"),
            _AGE,
            *_WIDE_WORKLOAD,
        ],
        _cron_job_cells,
    ),
    "Event": _Printer(
        [
            Column("Last Seen"),
            Column("Type"),
            Column("Reason"),
            Column("Object"),
            Column("Subobject", priority=1),
            Column("Source", priority=1),
            Column("Message"),
            Column("First Seen", priority=1),
            Column("Count", priority=1),
            Column("Name", priority=1, format="name"),
        ],
        _event_cells,
    ),
    "Namespace": _aged(
        Column("Status"), cells=lambda o: [str((o.get("status") or {}).get("phase", ""))]
    ),
    "ConfigMap": _aged(
        Column("Data"), cells=lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {})]
    ),
    "Secret": _aged(
        Column("Type"),
        Column("Data"),
        cells=lambda o: [o.get("type", ""), len(o.get("data") or {})],
    ),
    "ServiceAccount": _aged(Column("Secrets"), cells=lambda o: [len(o.get("secrets") or [])]),
    "PersistentVolumeClaim": _named(
        [
            Column("Status"),
            Column("Volume"),
            Column("Capacity"),
            Column("Access Modes"),
            Column("StorageClass"),
            Column("VolumeAttributesClass"),
            _AGE,
            Column("VolumeMode", priority=1),
        ],
        _claim_cells,
    ),
    "PersistentVolume": _named(
        [
            Column("Capacity"),
            Column("Access Modes"),
            Column("Reclaim Policy"),
            Column("Status"),
            Column("Claim"),
            Column("StorageClass"),
            Column("VolumeAttributesClass"),
            Column("Reason"),
            _AGE,
            Column("VolumeMode", priority=1),
        ],
        _volume_cells,
    ),
    "Lease": _aged(Column("Holder"), cells=lambda o: [_json_path(o, ".spec.holderIdentity") or ""]),
    "Node": _named(
        [
            Column("Status"),
            Column("Roles"),
            _AGE,
            Column("Version"),
            Column("Internal-IP", priority=1),
            Column("External-IP", priority=1),
            Column("OS-Image", priority=1),
            Column("Kernel-Version", priority=1),
            Column("Container-Runtime", priority=1),
        ],
        _node_cells,
    ),
    "Ingress": _named(
        [Column("Class"), Column("Hosts"), Column("Address"), Column("Ports"), _AGE], _ingress_cells
    ),
    "IngressClass": _aged(
        Column("Controller"),
        Column("Parameters"),
        cells=lambda o: [_json_path(o, ".spec.controller") or "", _ingress_class_parameters(o)],
    ),
    "HorizontalPodAutoscaler": _named(
        [
            Column("Reference"),
            Column("Targets"),
            Column("MinPods"),
            Column("MaxPods"),
            Column("Replicas"),
            _AGE,
        ],
        _hpa_cells,
    ),
    "RoleBinding": _named(
        [
            Column("Role"),
            _AGE,
            Column("Users", priority=1),
            Column("Groups", priority=1),
            Column("ServiceAccounts", priority=1),
        ],
        _binding_cells,
    ),
    "PodDisruptionBudget": _named(
        [
            Column("Min Available"),
            Column("Max Unavailable"),
            Column("Allowed Disruptions", "integer"),
            _AGE,
        ],
        _budget_cells,
    ),
    "PriorityClass": _named(
        [
            Column("Value", "integer"),
            Column("Global-Default", "boolean"),
            _AGE,
            Column("PreemptionPolicy"),
        ],
        lambda o: [
            int(o.get("value") or 0),
            bool(o.get("globalDefault")),
            _age(o),
            o.get("preemptionPolicy", ""),
        ],
    ),
    "ResourceQuota": _named([Column("Request"), Column("Limit"), _AGE], _quota_cells),
    "ValidatingWebhookConfiguration": _aged(
        Column("Webhooks", "integer"), cells=lambda o: [len(o.get("webhooks") or [])]
    ),
    "NetworkPolicy": _aged(
        Column("Pod-Selector"),
        cells=lambda o: [_format_selector(_json_path(o, ".spec.podSelector"))],
    ),
    "StorageClass": _Printer(
        [
            Column("Name", format="name"),
            Column("Provisioner"),
            Column("ReclaimPolicy"),
            Column("VolumeBindingMode"),
            Column("AllowVolumeExpansion"),
            _AGE,
        ],
        lambda o: [_storage_class_name(o), *_storage_class_cells(o)],
    ),
}
_PRINTERS["ClusterRoleBinding"] = _PRINTERS["RoleBinding"]
_PRINTERS["MutatingWebhookConfiguration"] = _PRINTERS["ValidatingWebhookConfiguration"]
# Kinds without a printer (Role, ClusterRole, CustomResourceDefinition, ...) get the default
# table converter's columns, as from kube-apiserver.
_DEFAULT_PRINTER = _named([_CREATED_AT], lambda o: [_created_at(o)])


# ---- custom resources ----


# What a CRD without printer columns gets (apiextensions' serveDefaultColumnsIfEmpty).
_CRD_DEFAULT_COLUMNS = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
# Kinds served here as built-ins that real clusters get from CRDs, with those CRDs' columns.
_CRD_KIND_COLUMNS = {
    "HTTPRoute": [
        {"name": "Hostnames", "type": "string", "jsonPath": ".spec.hostnames"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}


def _crd_cell(value: Any, column_type: str) -> Any:
    """A custom column's cell: string columns print as JSONPath does (JSON for lists and
    maps), other types keep matching JSON values only (apiextensions' cellForJSONValue)."""
    if value is None:
        return None
    if column_type == "string":
        if isinstance(value, (list, dict)):
            return json.dumps(value, separators=(",", ":"))
        return str(value).lower() if isinstance(value, bool) else str(value)
    if column_type == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if column_type == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "date" and isinstance(value, str):
        try:
            return _since(value)
        except ValueError:
            return "<invalid>"
    return None


def _crd_printer(declared: list[Obj]) -> _Printer:
    columns = [
        Column(
            spec["name"],
            spec.get("type", "string"),
            int(spec.get("priority", 0)),
            spec.get("format", ""),
        )
        for spec in declared
    ]

    def cells(obj: Obj) -> list[Any]:
        return [
            _crd_cell(_json_path(obj, s["jsonPath"]), s.get("type", "string")) for s in declared
        ]

    return _named(columns, cells)


def _printer(store: Store, rtype: ResourceType, version: str) -> _Printer:
    if not store.is_builtin(rtype):
        declared = openapi.printer_columns(store, rtype, version)
        return _crd_printer(declared or _CRD_DEFAULT_COLUMNS)
    if rtype.kind in _CRD_KIND_COLUMNS:
        return _crd_printer(_CRD_KIND_COLUMNS[rtype.kind])
    return _PRINTERS.get(rtype.kind, _DEFAULT_PRINTER)


def table(
    store: Store,
    rtype: ResourceType,
    version: str,
    items: list[Obj],
    meta: Obj,
    include_object: str | None,
    *,
    headers: bool = True,
) -> Obj:
    """A meta.k8s.io/v1 Table of objects of one resource version, as `kubectl get` asks for
    (`includeObject=Object` embeds the whole objects, otherwise their metadata).

    Without `headers` the column definitions are null, as in a watch's events after the first.
    """
    printer = _printer(store, rtype, version)
    rows = []
    for item in items:
        if include_object == "Object":
            row_object: Obj = item
        else:
            row_object = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": item["metadata"],
            }
        row: Obj = {"cells": printer.cells(item), "object": row_object}
        if conditions := printer.conditions(item):
            row["conditions"] = conditions
        rows.append(row)
    definitions = [
        {"name": c.name, "type": c.type, "format": c.format, "priority": c.priority}
        for c in printer.columns
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": definitions if headers else None,
        "rows": rows,
    }
