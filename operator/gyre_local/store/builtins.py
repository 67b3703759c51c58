"""The resource types the local API server serves out of the box."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gyre_local.store.autoscaling import hpa_from_v1, hpa_to_v1
from gyre_local.store.selectors import object_selector_matches

DEFAULT_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@dataclass(frozen=True)
class ResourceType:
    """One served resource: its identity, scope and discovery facts."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = DEFAULT_VERBS
    # Versions served besides `version` (which is the storage version), for custom resources.
    served_versions: tuple[str, ...] = ()
    # Field selector labels beyond metadata.name and metadata.namespace.
    field_labels: tuple[str, ...] = ()
    # The object paths of field labels that are not paths themselves.
    field_paths: tuple[tuple[str, str], ...] = ()
    # The (group, plural) whose stored objects a view type (events.k8s.io Events) serves.
    stored_as: tuple[str, str] | None = None
    # batch/v1 Jobs orphan their pods unless a propagation policy is given, as in Kubernetes.
    orphan_by_default: bool = False
    singular: str = field(default="")

    @property
    def api_version(self) -> str:
        """The apiVersion string of the storage version."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def versions(self) -> tuple[str, ...]:
        """Every served version, the storage version first."""
        return (self.version, *(v for v in self.served_versions if v != self.version))

    @property
    def singular_name(self) -> str:
        """The singular resource name used in discovery."""
        return self.singular or self.kind.lower()

    def field_path(self, label: str) -> str:
        """The object path a field selector label reads."""
        return dict(self.field_paths).get(label, label)

    @property
    def has_status(self) -> bool:
        """Whether writes to .status go through a separate subresource."""
        return "status" in self.subresources


_ALL = ("all",)
_REGARDING_FIELDS = (
    "apiVersion",
    "fieldPath",
    "kind",
    "name",
    "namespace",
    "resourceVersion",
    "uid",
)
RBAC_GROUP = "rbac.authorization.k8s.io"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
# The finalizers the StorageObjectInUseProtection admission plugin gives claims and volumes.
STORAGE_PROTECTION_FINALIZERS = {
    "PersistentVolumeClaim": "kubernetes.io/pvc-protection",
    "PersistentVolume": "kubernetes.io/pv-protection",
}

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "Namespace", "namespaces", False, ("ns",), (), ("status",)),
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        ("po",),
        _ALL,
        ("status", "log", "proxy", "exec", "attach", "portforward", "eviction"),
        field_labels=("status.phase", "spec.nodeName", "spec.restartPolicy", "status.podIP"),
    ),
    ResourceType("", "v1", "Service", "services", True, ("svc",), _ALL, ("status", "proxy")),
    ResourceType("", "v1", "Endpoints", "endpoints", True, ("ep",), singular="endpoints"),
    ResourceType("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    ResourceType("", "v1", "Secret", "secrets", True, field_labels=("type",)),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), (), ("token",)),
    ResourceType(
        "", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",), (), ("status",)
    ),
    ResourceType(
        "", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), (), ("status",)
    ),
    ResourceType(
        "",
        "v1",
        "Event",
        "events",
        True,
        ("ev",),
        field_labels=(
            "involvedObject.apiVersion",
            "involvedObject.fieldPath",
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.resourceVersion",
            "involvedObject.uid",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ),
        field_paths=(("source", "source.component"),),
    ),
    ResourceType(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        True,
        ("ev",),
        field_labels=(
            *(f"regarding.{field}" for field in _REGARDING_FIELDS),
            "reason",
            "reportingController",
            "type",
        ),
        field_paths=(
            *((f"regarding.{field}", f"involvedObject.{field}") for field in _REGARDING_FIELDS),
            ("reportingController", "reportingComponent"),
        ),
        stored_as=("", "events"),
    ),
    ResourceType("batch", "v1", "Job", "jobs", True, (), _ALL, ("status",), orphan_by_default=True),
    ResourceType("batch", "v1", "CronJob", "cronjobs", True, ("cj",), _ALL, ("status",)),
    ResourceType(
        "apps", "v1", "Deployment", "deployments", True, ("deploy",), _ALL, ("status", "scale")
    ),
    ResourceType(
        "apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), _ALL, ("status", "scale")
    ),
    ResourceType(
        "apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), _ALL, ("status", "scale")
    ),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), _ALL, ("status",)),
    ResourceType("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True),
    ResourceType("", "v1", "Node", "nodes", False, ("no",), (), ("status",)),
    ResourceType(RBAC_GROUP, "v1", "Role", "roles", True),
    ResourceType(RBAC_GROUP, "v1", "ClusterRole", "clusterroles", False),
    ResourceType(RBAC_GROUP, "v1", "RoleBinding", "rolebindings", True),
    ResourceType(RBAC_GROUP, "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ResourceType(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        True,
        ("pdb",),
        (),
        ("status",),
    ),
    ResourceType(
        "networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), (), ("status",)
    ),
    ResourceType("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    ResourceType("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    ResourceType(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        ("hpa",),
        _ALL,
        ("status",),
        served_versions=("v1",),
    ),
    ResourceType("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",)),
    ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    ResourceType("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",)),
    *(
        ResourceType("admissionregistration.k8s.io", "v1", kind, f"{kind.lower()}s", False)
        for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
    ),
    ResourceType("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), (), ("status",)),
    ResourceType("", "v1", "LimitRange", "limitranges", True, ("limits",)),
    *(
        ResourceType(group, "v1", kind, f"{kind.lower()}s", namespaced, verbs=("create",))
        for group, kind, namespaced in (
            ("authorization.k8s.io", "SelfSubjectAccessReview", False),
            ("authorization.k8s.io", "SelfSubjectRulesReview", False),
            ("authorization.k8s.io", "SubjectAccessReview", False),
            ("authorization.k8s.io", "LocalSubjectAccessReview", True),
            ("authentication.k8s.io", "SelfSubjectReview", False),
            ("authentication.k8s.io", "TokenReview", False),
        )
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        ("crd", "crds"),
        ("api-extensions",),
        ("status",),
    ),
    ResourceType(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "httproutes",
        True,
        (),
        ("gateway-api",),
        ("status",),
    ),
)

INITIAL_NAMESPACES: tuple[str, ...] = ("default", "kube-system", "kube-public", "kube-node-lease")

CRD_GROUP = "apiextensions.k8s.io"
CRD_PLURAL = "customresourcedefinitions"


def set_defaults(kind: str, obj: dict[str, Any], cluster_ip: Callable[[], str]) -> None:
    """Fill the fields the API server defaults on every write of a built-in kind."""
    spec = obj.setdefault("spec", {}) if kind in _KINDS_WITH_SPEC else None
    for path in _TEMPLATE_PATHS.get(kind, ()):
        _drop_null_creation_timestamp(_member(obj, path) or {})
    pod_spec = _member(obj, _POD_SPEC_PATHS[kind]) if kind in _POD_SPEC_PATHS else None
    if pod_spec is not None:
        default_pod_spec(pod_spec, restart_policy=kind not in _RESTART_POLICY_REQUIRED)
    if kind == "Namespace":
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif kind == "Pod" and spec is not None:
        _default_pod(spec)
    elif kind == "Service" and spec is not None:
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        if spec["type"] != "ExternalName":
            # SetDefaults_Service, then the single-stack IPv4 allocation of the REST strategy.
            spec["clusterIP"] = spec.get("clusterIP") or cluster_ip()
            spec["clusterIPs"] = [spec["clusterIP"]]
            spec.setdefault("internalTrafficPolicy", "Cluster")
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
    elif kind in ("Deployment", "ReplicaSet") and spec is not None:
        _fill(spec, "replicas", 1)
        if kind == "Deployment":
            _default_deployment(spec)
    elif kind == "Job" and spec is not None:
        _default_job(obj, spec)
    elif kind == "CronJob" and spec is not None:
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif kind == "PersistentVolumeClaim" and spec is not None:
        spec.setdefault("volumeMode", "Filesystem")
    elif kind == "PersistentVolume" and spec is not None:
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
        if isinstance(spec.get("hostPath"), dict):
            spec["hostPath"].setdefault("type", "")
    elif kind == "StatefulSet" and spec is not None:
        _default_stateful_set(spec)
    elif kind == "DaemonSet" and spec is not None:
        _default_daemon_set(spec)
    elif kind == "PriorityClass":
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")
    elif kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        _default_webhooks(obj, mutating=kind == "MutatingWebhookConfiguration")
    elif kind == "LimitRange" and spec is not None:
        for item in spec.get("limits") or []:
            _default_limit_range_item(item)
    elif kind == "NetworkPolicy" and spec is not None:
        _default_network_policy(spec)
    elif kind == "HorizontalPodAutoscaler" and spec is not None:
        spec.setdefault("minReplicas", 1)
        spec.setdefault("metrics", [_DEFAULT_HPA_METRIC])
    elif kind == "StorageClass":
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        # A ServiceAccount subject's group defaults to "", which a real server omits (Go's
        # omitempty): showing it would make every `kubectl apply` of a binding a change.
        for subject in obj.get("subjects") or []:
            if subject.get("kind") in ("User", "Group"):
                subject.setdefault("apiGroup", RBAC_GROUP)


_DEFAULT_HPA_METRIC: dict[str, Any] = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
}


# Where the (pod or job) templates of a kind are.
_TEMPLATE_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Deployment": (("spec", "template"),),
    "ReplicaSet": (("spec", "template"),),
    "Job": (("spec", "template"),),
    "CronJob": (("spec", "jobTemplate"), ("spec", "jobTemplate", "spec", "template")),
    "StatefulSet": (("spec", "template"),),
    "DaemonSet": (("spec", "template"),),
}
# The built-in resources whose metadata.generation counts spec changes (custom resources' does).
GENERATION_RESOURCES = frozenset(
    {
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("policy", "poddisruptionbudgets"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "ingressclasses"),
        ("networking.k8s.io", "networkpolicies"),
        (CRD_GROUP, CRD_PLURAL),
        ("gateway.networking.k8s.io", "httproutes"),
    }
)


# Where the pod spec of a kind is.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
}
# Their pods must say OnFailure or Never: kube-apiserver would default Always and then reject it.
_RESTART_POLICY_REQUIRED = frozenset({"Job", "CronJob"})
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_DEFAULTS = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}
_DEFAULT_MODE_SOURCES = ("configMap", "secret", "downwardAPI", "projected")
# The mode of the files of configMap, secret, downwardAPI and projected volumes (0644).
_DEFAULT_FILE_MODE = 420


def _fill(obj: dict[str, Any], key: str, value: Any) -> None:
    """Set a member the API server defaults when it is missing, null or an empty string."""
    if obj.get(key) in (None, ""):
        obj[key] = value


def _drop_null_creation_timestamp(template: dict[str, Any]) -> None:
    """Drop the null creationTimestamp that clients decoding a template into typed objects add
    on the way back (kubectl rollout undo sends an old ReplicaSet's template so): the template
    is the same without it, and must stay equal to the revision it came from."""
    metadata = template.get("metadata")
    if isinstance(metadata, dict) and metadata.get("creationTimestamp", "") is None:
        del metadata["creationTimestamp"]


def default_pod_spec(spec: dict[str, Any], *, restart_policy: bool = True) -> None:
    """kube-apiserver's defaults of every pod spec, a Pod's or a template's (SetDefaults_PodSpec
    and those of its containers and volumes), and the deprecated serviceAccount kept equal to
    serviceAccountName as its conversion keeps it."""
    if restart_policy:
        _fill(spec, "restartPolicy", "Always")
    _fill(spec, "dnsPolicy", "ClusterFirst")
    _fill(spec, "securityContext", {})
    _fill(spec, "terminationGracePeriodSeconds", 30)
    _fill(spec, "schedulerName", "default-scheduler")
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec.get("serviceAccountName") or spec["serviceAccount"]
        spec["serviceAccount"] = spec["serviceAccountName"]
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for container in _dicts(spec.get(group)):
            _default_container(container)
    for volume in _dicts(spec.get("volumes")):
        _default_volume(volume)


def _dicts(items: Any) -> list[dict[str, Any]]:
    """The objects of a list member (nothing when it is not a list)."""
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _default_container(container: dict[str, Any]) -> None:
    """SetDefaults_Container, with its ports', env's, probes' and lifecycle handlers'."""
    if not container.get("imagePullPolicy"):
        latest = image_tag(str(container.get("image") or "")) == "latest"
        container["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    _fill(container, "terminationMessagePath", "/dev/termination-log")
    _fill(container, "terminationMessagePolicy", "File")
    _fill(container, "resources", {})
    for port in _dicts(container.get("ports")):
        _fill(port, "protocol", "TCP")
    for variable in _dicts(container.get("env")):
        _default_field_references(variable.get("valueFrom"))
    for name in _PROBES:
        probe = container.get(name)
        if isinstance(probe, dict):
            _default_probe(probe)
    lifecycle = container.get("lifecycle")
    for hook in ("postStart", "preStop"):
        handler = lifecycle.get(hook) if isinstance(lifecycle, dict) else None
        if isinstance(handler, dict):
            _default_handler(handler)


def image_tag(image: str) -> str:
    """The tag of an image reference as kubelet's ParseImageName reads it: `latest` when it
    names neither a tag nor a digest, empty when it names only a digest."""
    name, _, digest = image.partition("@")
    last_part = name.rpartition("/")[2]
    if ":" in last_part:
        return last_part.partition(":")[2]
    return "" if digest else "latest"


def _default_probe(probe: dict[str, Any]) -> None:
    """SetDefaults_Probe (a zero is unset) and the defaults of its handler."""
    for key, value in _PROBE_DEFAULTS.items():
        if not probe.get(key):
            probe[key] = value
    _default_handler(probe)
    grpc = probe.get("grpc")
    if isinstance(grpc, dict) and grpc.get("service") is None:
        grpc["service"] = ""


def _default_handler(handler: dict[str, Any]) -> None:
    """SetDefaults_HTTPGetAction of a probe's or lifecycle hook's httpGet."""
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        _fill(http_get, "path", "/")
        _fill(http_get, "scheme", "HTTP")


def _default_field_references(source: Any) -> None:
    """A fieldRef's apiVersion v1, and a resourceFieldRef's divisor, which the API server
    always writes (a zero quantity is "0")."""
    if not isinstance(source, dict):
        return
    if isinstance(source.get("fieldRef"), dict):
        _fill(source["fieldRef"], "apiVersion", "v1")
    if isinstance(source.get("resourceFieldRef"), dict):
        _fill(source["resourceFieldRef"], "divisor", "0")


def _default_volume(volume: dict[str, Any]) -> None:
    """SetDefaults_Volume (no source: an emptyDir) and the defaults of its source."""
    if set(volume) <= {"name"}:
        volume["emptyDir"] = {}
    for source_name in _DEFAULT_MODE_SOURCES:
        source = volume.get(source_name)
        if isinstance(source, dict) and source.get("defaultMode") is None:
            source["defaultMode"] = _DEFAULT_FILE_MODE
    if isinstance(volume.get("hostPath"), dict) and volume["hostPath"].get("type") is None:
        volume["hostPath"]["type"] = ""
    downward = volume.get("downwardAPI")
    items = _dicts(downward.get("items")) if isinstance(downward, dict) else []
    projected = volume.get("projected")
    for source in _dicts(projected.get("sources")) if isinstance(projected, dict) else []:
        token = source.get("serviceAccountToken")
        if isinstance(token, dict) and token.get("expirationSeconds") is None:
            token["expirationSeconds"] = 3600
        if isinstance(source.get("downwardAPI"), dict):
            items += _dicts(source["downwardAPI"].get("items"))
    for item in items:
        _default_field_references(item)


def _default_pod(spec: dict[str, Any]) -> None:
    """What a Pod gets beyond its pod spec, SetDefaults_Pod: requests from limits, service
    links, host ports on the host network."""
    for container in _dicts(spec.get("initContainers")) + _dicts(spec.get("containers")):
        resources = container.get("resources")
        if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
            resources["requests"] = {**resources["limits"], **(resources.get("requests") or {})}
        if spec.get("hostNetwork"):
            for port in _dicts(container.get("ports")):
                if not port.get("hostPort"):
                    port["hostPort"] = port.get("containerPort")
    _fill(spec, "enableServiceLinks", True)


def _default_deployment(spec: dict[str, Any]) -> None:
    """apps/v1 SetDefaults_Deployment beyond replicas."""
    _fill(spec, "strategy", {})
    strategy: dict[str, Any] = spec["strategy"]
    _fill(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        _fill(strategy, "rollingUpdate", {})
        _fill(strategy["rollingUpdate"], "maxUnavailable", "25%")
        _fill(strategy["rollingUpdate"], "maxSurge", "25%")
    _fill(spec, "revisionHistoryLimit", 10)
    _fill(spec, "progressDeadlineSeconds", 600)


def _default_job(job: dict[str, Any], spec: dict[str, Any]) -> None:
    """batch/v1 SetDefaults_Job, and the Job strategy's selection of its own pods."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    _fill(spec, "parallelism", 1)
    _fill(spec, "backoffLimit", 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6)
    _fill(spec, "completionMode", "NonIndexed")
    _fill(spec, "suspend", False)
    _fill(
        spec,
        "podReplacementPolicy",
        "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed",
    )
    _label_job_as_its_template(job)
    if not spec.get("manualSelector") and "selector" not in spec:
        _select_own_pods(job, spec)
        # kube-apiserver defaults a Job again on every read, when its template has the labels.
        _label_job_as_its_template(job)


def _label_job_as_its_template(job: dict[str, Any]) -> None:
    """A Job without labels gets its pod template's, as SetDefaults_Job gives them."""
    template_labels = (_member(job, ("spec", "template", "metadata")) or {}).get("labels")
    if template_labels and not job["metadata"].get("labels"):
        job["metadata"]["labels"] = dict(template_labels)


def _member(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    """The object at a path of keys, if there is one."""
    current: Any = obj
    for key in path:
        current = current.get(key) if isinstance(current, dict) else None
    return current if isinstance(current, dict) else None


def _default_stateful_set(spec: dict[str, Any]) -> None:
    """apps/v1 SetDefaults_StatefulSet, and SetDefaults_PersistentVolumeClaim of its claim
    templates (which are shown with their apiVersion and kind)."""
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        strategy.setdefault("rollingUpdate", {})
    if strategy["type"] == "RollingUpdate" and isinstance(strategy.get("rollingUpdate"), dict):
        strategy["rollingUpdate"].setdefault("partition", 0)
    policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    policy.setdefault("whenDeleted", "Retain")
    policy.setdefault("whenScaled", "Retain")
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    for template in spec.get("volumeClaimTemplates") or []:
        template.setdefault("apiVersion", "v1")
        template.setdefault("kind", "PersistentVolumeClaim")
        template.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        template.setdefault("status", {}).setdefault("phase", "Pending")


def _default_daemon_set(spec: dict[str, Any]) -> None:
    """apps/v1 SetDefaults_DaemonSet."""
    strategy = spec.setdefault("updateStrategy", {})
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)


def _default_webhooks(configuration: dict[str, Any], *, mutating: bool) -> None:
    """admissionregistration/v1 defaults of each webhook, its rules and its service."""
    for webhook in configuration.get("webhooks") or []:
        webhook.setdefault("failurePolicy", "Fail")
        webhook.setdefault("matchPolicy", "Equivalent")
        webhook.setdefault("namespaceSelector", {})
        webhook.setdefault("objectSelector", {})
        webhook.setdefault("timeoutSeconds", 10)
        if mutating:
            webhook.setdefault("reinvocationPolicy", "Never")
        for rule in webhook.get("rules") or []:
            rule.setdefault("scope", "*")
        service = (webhook.get("clientConfig") or {}).get("service")
        if isinstance(service, dict):
            service.setdefault("port", 443)


def _default_limit_range_item(item: dict[str, Any]) -> None:
    """SetDefaults_LimitRangeItem: a container limit's default from its max, its default
    request from its default, else its min."""
    if item.get("type") != "Container":
        return
    default = {**(item.get("max") or {}), **(item.get("default") or {})}
    request = {**(item.get("min") or {}), **default, **(item.get("defaultRequest") or {})}
    if default:
        item["default"] = default
    if request:
        item["defaultRequest"] = request


def _default_network_policy(spec: dict[str, Any]) -> None:
    """networking/v1 defaults: TCP ports, and policyTypes from the rules given."""
    for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
        for port in rule.get("ports") or []:
            port.setdefault("protocol", "TCP")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def _select_own_pods(job: dict[str, Any], spec: dict[str, Any]) -> None:
    """As kube-apiserver does for a Job without manualSelector: select its pods by its uid
    and label the pod template so (`kubectl logs job/NAME` finds the Job's own pods)."""
    uid, name = job["metadata"]["uid"], job["metadata"]["name"]
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.setdefault("template", {}).setdefault("metadata", {})
    template["labels"] = {
        **(template.get("labels") or {}),
        "batch.kubernetes.io/controller-uid": uid,
        "controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "job-name": name,
    }


def initial_status(kind: str) -> dict[str, Any]:
    """The status a built-in kind starts with on create."""
    return dict(_INITIAL_STATUS.get(kind, {}))


_INITIAL_STATUS: dict[str, dict[str, Any]] = {
    "Namespace": {"phase": "Active"},
    "Pod": {"phase": "Pending", "qosClass": "BestEffort"},
    "Service": {"loadBalancer": {}},
    # The PersistentVolume controller binds claims (controllers/volumes.py).
    "PersistentVolumeClaim": {"phase": "Pending"},
    "PersistentVolume": {"phase": "Pending"},
    "Ingress": {"loadBalancer": {}},
    "PodDisruptionBudget": {
        "disruptionsAllowed": 0,
        "currentHealthy": 0,
        "desiredHealthy": 0,
        "expectedPods": 0,
    },
    "HorizontalPodAutoscaler": {"desiredReplicas": 0},
}
_KINDS_WITH_SPEC = frozenset(
    {
        "Pod",
        "Service",
        "Deployment",
        "ReplicaSet",
        "Job",
        "CronJob",
        "PersistentVolumeClaim",
        "PersistentVolume",
        "Node",
        "PodDisruptionBudget",
        "Ingress",
        "IngressClass",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
        "ResourceQuota",
        "LimitRange",
        "StatefulSet",
        "DaemonSet",
    }
)


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale view of an object with spec.replicas."""
    meta = obj["metadata"]
    match_labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(match_labels.items())),
        },
    }


# The workloads whose pod template must carry the labels their selector asks for.
SELECTING_WORKLOADS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"})


def selector_causes(obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    """What apps/v1 validation refuses in a workload's selector: none given, or one that does
    not select its own pod template's labels."""
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if not selector:
        return [("FieldValueRequired", "spec.selector", "Required value")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if object_selector_matches(selector, labels):
        return []
    shown = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return [
        (
            "FieldValueInvalid",
            "spec.template.metadata.labels",
            f"Invalid value: map[string]string{{{shown}}}: "
            "`selector` does not match template `labels`",
        )
    ]


def crd_causes(crd: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Validation failures of a CRD as (reason, field, detail) causes."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[tuple[str, str, str]] = []
    for required in ("group", "names", "scope", "versions"):
        if not spec.get(required):
            causes.append(("FieldValueRequired", f"spec.{required}", "Required value"))
    for required in ("plural", "kind"):
        if spec.get("names") and not names.get(required):
            causes.append(("FieldValueRequired", f"spec.names.{required}", "Required value"))
    expected = f"{names.get('plural')}.{spec.get('group')}"
    name = crd["metadata"].get("name")
    if not causes and name != expected:
        causes.append(
            (
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    versions = spec.get("versions") or []
    if versions and sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.versions",
                "Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: "
                "must have exactly one version marked as storage version",
            )
        )
    return causes


def crd_status(crd: dict[str, Any], now: str) -> dict[str, Any]:
    """The status the API server reports for an accepted CRD."""
    spec = crd["spec"]
    storage = [v["name"] for v in spec.get("versions", []) if v.get("storage")]
    previous = (crd.get("status") or {}).get("storedVersions") or []
    conditions = [
        {
            "type": "NamesAccepted",
            "status": "True",
            "reason": "NoConflicts",
            "message": "no conflicts found",
            "lastTransitionTime": now,
        },
        {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
            "lastTransitionTime": now,
        },
    ]
    old_conditions = {c["type"]: c for c in (crd.get("status") or {}).get("conditions") or []}
    conditions = [old_conditions.get(c["type"], c) for c in conditions]
    return {
        "acceptedNames": copy.deepcopy(spec["names"]),
        "conditions": conditions,
        "storedVersions": list(dict.fromkeys([*previous, *storage])),
    }


def crd_resource_type(crd: dict[str, Any]) -> ResourceType | None:
    """The resource type a CRD defines, or None when it serves no version."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec.get("versions", []) if v.get("served", True)]
    storage = next((v for v in served if v.get("storage")), served[0] if served else None)
    if storage is None:
        return None
    return ResourceType(
        group=spec["group"],
        version=storage["name"],
        kind=names["kind"],
        plural=names["plural"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=tuple((storage.get("subresources") or {}).keys()),
        served_versions=tuple(v["name"] for v in served),
        field_labels=tuple(
            f["jsonPath"].lstrip(".") for f in storage.get("selectableFields") or []
        ),
        singular=names.get("singular") or names["kind"].lower(),
    )


# The served versions of a built-in type that differ in shape from its storage version, by
# (group, plural, version): how a stored object is shown in the version, and how one is stored.
_Conversion = Callable[[dict[str, Any]], dict[str, Any]]
_CONVERSIONS: dict[tuple[str, str, str], tuple[_Conversion, _Conversion]] = {
    ("autoscaling", "horizontalpodautoscalers", "v1"): (hpa_to_v1, hpa_from_v1),
}


def converts(rtype: ResourceType, version: str) -> bool:
    """Whether objects of a type look different in a served version than as stored."""
    return (rtype.group, rtype.plural, version) in _CONVERSIONS


def to_version(rtype: ResourceType, version: str, obj: dict[str, Any]) -> dict[str, Any]:
    """A stored object (whole or part) as a served version shows it (a new top level)."""
    conversion = _CONVERSIONS.get((rtype.group, rtype.plural, version))
    return conversion[0](obj) if conversion else obj


def from_version(rtype: ResourceType, version: str, obj: dict[str, Any]) -> dict[str, Any]:
    """An object (whole or part) of a served version in its stored form (a new top level)."""
    conversion = _CONVERSIONS.get((rtype.group, rtype.plural, version))
    return conversion[1](obj) if conversion else obj


# core/v1 Event fields under their events.k8s.io/v1 names, as kube-apiserver converts them.
_EVENT_VIEW_NAMES = {
    "involvedObject": "regarding",
    "message": "note",
    "reportingComponent": "reportingController",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
}
_EVENT_CORE_NAMES = {view: core for core, view in _EVENT_VIEW_NAMES.items()}


def to_view(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """A stored object as its view type shows it (a new top level sharing the values)."""
    view = {_EVENT_VIEW_NAMES.get(key, key): value for key, value in obj.items()}
    view["apiVersion"] = rtype.api_version
    view.setdefault("eventTime", None)
    return view


def from_view(obj: Any) -> Any:
    """A view type's object (or merge, strategic or apply patch) in its stored form."""
    if not isinstance(obj, dict):
        return obj
    stored = {_EVENT_CORE_NAMES.get(key, key): value for key, value in obj.items()}
    stored.pop("apiVersion", None)
    return stored


def json_patch_from_view(operations: Any) -> Any:
    """A JSON patch of a view type's object with its paths in the stored form."""
    if not isinstance(operations, list):
        return operations
    return [
        {**op, **{key: _stored_pointer(op[key]) for key in ("path", "from") if key in op}}
        if isinstance(op, dict)
        else op
        for op in operations
    ]


def _stored_pointer(pointer: Any) -> Any:
    if not isinstance(pointer, str):
        return pointer
    parts = pointer.split("/")
    if len(parts) > 1:
        parts[1] = _EVENT_CORE_NAMES.get(parts[1], parts[1])
    return "/".join(parts)
