"""The API groups and kinds Helm charts and kubectl need, against a running local cluster."""

from __future__ import annotations

import functools
import json
import os
import shutil
import urllib.error
import urllib.request
from typing import Any

import kubernetes
import pytest
import yaml
from kubectl_runner import KUBECTL, Kubectl, kubectl_runner

from gyre_local.cluster import LocalCluster, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which(KUBECTL) is None, reason="kubectl is not installed"),
]


CHART_OBJECTS: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [
            {"kind": "ServiceAccount", "name": "default"},
            {"kind": "User", "name": "jane"},
        ],
    },
    {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {
            "rules": [
                {
                    "host": "web.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ]
        },
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"ports": [{"port": 80}]}],
        },
    },
    {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 3,
        },
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    },
]
STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "fast"},
    "provisioner": "example.com/fast",
}


@pytest.fixture(scope="module")
def kubectl(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """Run kubectl against the module's cluster; fails the test on a non-zero exit by default."""
    return kubectl_runner(cluster.kubeconfig_path, tmp_path_factory.mktemp("kubecache"))


def _namespace(kubectl: Kubectl, name: str) -> str:
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    return name


def _exists(kubectl: Kubectl, *args: str) -> bool:
    return kubectl("get", *args, check=False).returncode == 0


def _output(kubectl: Kubectl, *args: str) -> str:
    return str(kubectl(*args).stdout)


def _get(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def test_api_resources_list_the_groups_with_scope_and_short_names(kubectl: Kubectl) -> None:
    rows = {
        tuple(line.split()[0:1] + line.split()[-3:])
        for line in kubectl("api-resources", "--no-headers").stdout.splitlines()
    }
    expected = {
        ("roles", "rbac.authorization.k8s.io/v1", "true", "Role"),
        ("clusterroles", "rbac.authorization.k8s.io/v1", "false", "ClusterRole"),
        ("rolebindings", "rbac.authorization.k8s.io/v1", "true", "RoleBinding"),
        ("clusterrolebindings", "rbac.authorization.k8s.io/v1", "false", "ClusterRoleBinding"),
        ("poddisruptionbudgets", "policy/v1", "true", "PodDisruptionBudget"),
        ("ingresses", "networking.k8s.io/v1", "true", "Ingress"),
        ("ingressclasses", "networking.k8s.io/v1", "false", "IngressClass"),
        ("networkpolicies", "networking.k8s.io/v1", "true", "NetworkPolicy"),
        ("horizontalpodautoscalers", "autoscaling/v2", "true", "HorizontalPodAutoscaler"),
        ("storageclasses", "storage.k8s.io/v1", "false", "StorageClass"),
        ("nodes", "v1", "false", "Node"),
    }
    assert expected <= rows
    short = kubectl("api-resources", "-o", "name", "--no-headers").stdout.split()
    assert "poddisruptionbudgets.policy" in short
    for alias, plural in (
        ("pdb", "poddisruptionbudgets"),
        ("ing", "ingresses"),
        ("netpol", "networkpolicies"),
        ("hpa", "horizontalpodautoscalers"),
        ("sc", "storageclasses"),
        ("no", "nodes"),
    ):
        assert kubectl("get", alias, "-A", "--no-headers", check=False).returncode == 0, plural


def test_the_local_node_is_ready_and_sized_as_this_machine(kubectl: Kubectl) -> None:
    nodes = _get(kubectl, "nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["local"]
    status = nodes[0]["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    assert status["capacity"]["cpu"] == str(os.cpu_count())
    assert status["capacity"]["memory"].endswith("Ki")
    assert status["allocatable"]["pods"] == "110"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert status["nodeInfo"]["kubeletVersion"] == "v1.32.0"
    kubectl("wait", "--for=condition=Ready", "node/local", "--timeout=5s")


def test_default_storage_class(kubectl: Kubectl) -> None:
    standard = _get(kubectl, "storageclass", "standard")
    annotations = standard["metadata"]["annotations"]
    assert annotations["storageclass.kubernetes.io/is-default-class"] == "true"
    assert (standard["reclaimPolicy"], standard["volumeBindingMode"]) == ("Delete", "Immediate")
    assert "created" in kubectl("apply", "-f", "-", stdin=yaml.safe_dump(STORAGE_CLASS)).stdout
    fast = _get(kubectl, "sc", "fast")
    assert "namespace" not in fast["metadata"]
    assert fast["reclaimPolicy"] == "Delete"


def test_every_namespace_has_a_default_service_account_recreated_if_deleted(
    kubectl: Kubectl,
) -> None:
    for namespace in ("default", "kube-system", "kube-public", _namespace(kubectl, "sa-team")):
        wait_for(functools.partial(_exists, kubectl, "sa", "default", "-n", namespace))
    uid = _get(kubectl, "sa", "default", "-n", "sa-team")["metadata"]["uid"]
    kubectl("delete", "sa", "default", "-n", "sa-team")
    recreated = wait_for(
        lambda: json.loads(
            kubectl("get", "sa", "default", "-n", "sa-team", "-o", "json", check=False).stdout
            or "null"
        )
    )
    assert recreated["metadata"]["uid"] != uid


def test_apply_chart_manifests_with_real_defaults(kubectl: Kubectl) -> None:
    namespace = _namespace(kubectl, "chart")
    output = kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(CHART_OBJECTS)
    ).stdout
    assert output.splitlines() == [
        "role.rbac.authorization.k8s.io/reader created",
        "rolebinding.rbac.authorization.k8s.io/reader created",
        "poddisruptionbudget.policy/web created",
        "ingress.networking.k8s.io/web created",
        "networkpolicy.networking.k8s.io/web created",
        "horizontalpodautoscaler.autoscaling/web created",
        "persistentvolumeclaim/data created",
    ]
    again = kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(CHART_OBJECTS))
    # The PDB selector, the binding subjects (the User's apiGroup is defaulted) and the policy
    # rules are replaced whole by kubectl's patches (patchStrategy replace or atomic lists), so
    # those always read "configured".
    unchanged = {
        line.split()[0] for line in again.stdout.splitlines() if line.endswith("unchanged")
    }
    assert unchanged == {
        "role.rbac.authorization.k8s.io/reader",
        "ingress.networking.k8s.io/web",
        "horizontalpodautoscaler.autoscaling/web",
        "persistentvolumeclaim/data",
    }
    binding = _get(kubectl, "rolebinding", "reader", "-n", namespace)
    assert [s.get("apiGroup") for s in binding["subjects"]] == [None, "rbac.authorization.k8s.io"]

    # The disruption controller's figures for minAvailable 1 over no pods.
    def observed() -> dict[str, Any] | None:
        found: dict[str, Any] = _get(kubectl, "pdb", "web", "-n", namespace)["status"]
        return found if found.get("conditions") else None

    status = wait_for(observed)
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "currentHealthy": 0,
        "desiredHealthy": 1,
        "disruptionsAllowed": 0,
        "expectedPods": 0,
        "observedGeneration": 1,
    }
    [allowed] = status["conditions"]
    assert (allowed["type"], allowed["status"], allowed["reason"]) == (
        "DisruptionAllowed",
        "False",
        "InsufficientPods",
    )
    assert _get(kubectl, "ing", "web", "-n", namespace)["status"] == {"loadBalancer": {}}
    policy = _get(kubectl, "netpol", "web", "-n", namespace)["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [{"ports": [{"port": 80, "protocol": "TCP"}]}]
    # The DefaultStorageClass admission plugin names the default class in a claim without one.
    claim = _get(kubectl, "pvc", "data", "-n", namespace)["spec"]
    assert claim["storageClassName"] == "standard"
    hpa = _get(kubectl, "hpa", "web", "-n", namespace)["spec"]
    assert hpa["minReplicas"] == 1
    assert hpa["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]


def test_official_client_reads_the_new_groups(cluster: LocalCluster) -> None:
    client = cluster.api_client()
    rbac = kubernetes.client.RbacAuthorizationV1Api(client)
    rule = kubernetes.client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get"])
    meta = kubernetes.client.V1ObjectMeta(name="viewer")
    rbac.create_cluster_role(kubernetes.client.V1ClusterRole(metadata=meta, rules=[rule]))
    role = rbac.read_cluster_role("viewer")
    assert role.rules == [rule]
    assert role.metadata is not None and role.metadata.namespace is None
    nodes = kubernetes.client.CoreV1Api(client).list_node().items
    assert [n.metadata.name for n in nodes if n.metadata] == ["local"]
    classes = kubernetes.client.StorageV1Api(client).list_storage_class().items
    assert "standard" in [c.metadata.name for c in classes if c.metadata]
    groups = kubernetes.client.ApisApi(client).get_api_versions().groups
    preferred = {g.name: g.preferred_version.version for g in groups if g.preferred_version}
    assert (preferred["autoscaling"], preferred["policy"]) == ("v2", "v1")


def test_kubectl_auth_can_i_and_whoami(kubectl: Kubectl) -> None:
    assert kubectl("auth", "can-i", "create", "deployments").stdout == "yes\n"
    assert kubectl("auth", "can-i", "delete", "nodes", "--all-namespaces").stdout == "yes\n"
    whoami = [line.split(None, 1) for line in kubectl("auth", "whoami").stdout.splitlines()]
    assert whoami == [
        ["ATTRIBUTE", "VALUE"],
        ["Username", "local-admin"],
        ["Groups", "[system:masters system:authenticated]"],
    ]


def test_access_reviews_allow_everything_and_are_create_only(cluster: LocalCluster) -> None:
    client = cluster.api_client()
    authorization = kubernetes.client.AuthorizationV1Api(client)
    attributes = kubernetes.client.V1ResourceAttributes(
        namespace="default", verb="delete", group="apps", resource="deployments", name="web"
    )
    review = authorization.create_self_subject_access_review(
        kubernetes.client.V1SelfSubjectAccessReview(
            spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
        )
    )
    assert review.spec.resource_attributes == attributes
    assert review.status is not None
    assert (review.status.allowed, review.status.reason) == (
        True,
        "the local cluster does not enforce authorization",
    )
    subject = authorization.create_subject_access_review(
        kubernetes.client.V1SubjectAccessReview(
            spec=kubernetes.client.V1SubjectAccessReviewSpec(
                user="jane", groups=["dev"], resource_attributes=attributes
            )
        )
    )
    assert subject.spec.user == "jane"
    assert subject.status is not None and subject.status.allowed is True
    url = f"{cluster.url}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(url, context=cluster.ssl_context())
    assert raised.value.code == 405


def _token_review(client: kubernetes.client.ApiClient, token: str) -> Any:
    review = kubernetes.client.V1TokenReview(spec=kubernetes.client.V1TokenReviewSpec(token=token))
    return kubernetes.client.AuthenticationV1Api(client).create_token_review(review).status


def test_service_account_tokens_are_issued_and_authenticated(
    cluster: LocalCluster, kubectl: Kubectl
) -> None:
    namespace = _namespace(kubectl, "tokens")
    wait_for(functools.partial(_exists, kubectl, "sa", "default", "-n", namespace))
    token = kubectl("create", "token", "default", "-n", namespace).stdout.strip()
    assert token.count(".") == 2
    client = cluster.api_client()
    status = _token_review(client, token)
    assert status.authenticated is True
    assert status.user.username == f"system:serviceaccount:{namespace}:default"
    assert status.user.groups == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    ]
    assert status.audiences == ["https://kubernetes.default.svc.cluster.local"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert not _token_review(client, forged).authenticated
    # The token works as a Bearer token, and names its service account.
    client.configuration.api_key = {"authorization": token}
    client.configuration.api_key_prefix = {"authorization": "Bearer"}
    review: Any = kubernetes.client.AuthenticationV1Api(client).create_self_subject_review(
        kubernetes.client.V1SelfSubjectReview()
    )
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:default"
    assert kubernetes.client.CoreV1Api(client).list_namespaced_pod(namespace).items == []
    # A token is bound to its account: a recreated account does not accept it.
    kubectl("delete", "sa", "default", "-n", namespace)
    wait_for(functools.partial(_exists, kubectl, "sa", "default", "-n", namespace))
    assert not _token_review(client, token).authenticated


def test_token_request_fields_and_limits(cluster: LocalCluster, kubectl: Kubectl) -> None:
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    request = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(audiences=["vault"], expiration_seconds=1200)
    )
    issued: Any = core.create_namespaced_service_account_token("default", "default", request)
    assert issued.spec.audiences == ["vault"]
    assert issued.spec.expiration_seconds == 1200
    assert issued.status.expiration_timestamp is not None
    short = kubectl("create", "token", "default", "--duration=1m", check=False)
    assert short.returncode != 0
    assert (
        'TokenRequest.authentication.k8s.io "default" is invalid: spec.expirationSeconds: '
        "Invalid value: 60: may not specify a duration less than 10 minutes"
    ) in short.stderr
    missing = kubectl("create", "token", "nobody", check=False)
    assert 'serviceaccounts "nobody" not found' in missing.stderr


CORE_EVENT: dict[str, Any] = {
    "metadata": {"name": "web.1"},
    "involvedObject": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "namespace": "events-view",
        "fieldPath": "spec.template",
        "resourceVersion": "7",
    },
    "reason": "ScalingReplicaSet",
    "message": "Scaled up replica set web-1 to 1",
    "type": "Normal",
    "source": {"component": "deployment-controller"},
    "reportingComponent": "deployment-controller",
    "reportingInstance": "local",
    "count": 2,
    "firstTimestamp": "2026-01-01T00:00:00Z",
    "lastTimestamp": "2026-01-01T00:00:05Z",
}


def test_kubectl_events_for_one_pod(kubectl: Kubectl) -> None:
    namespace = _namespace(kubectl, "pod-events")
    for pod in ("one", "two"):
        kubectl("run", pod, "--image=busybox", "-n", namespace)
    for pod in ("one", "two"):
        kubectl("wait", "--for=condition=Ready", f"pod/{pod}", "-n", namespace, "--timeout=15s")
    lines = kubectl("events", "--for", "pod/one", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert {line.split()[3] for line in lines[1:]} == {"Pod/one"}
    assert {line.split()[2] for line in lines[1:]} >= {"Scheduled", "Started"}


def test_core_event_field_labels(cluster: LocalCluster, kubectl: Kubectl) -> None:
    namespace = _namespace(kubectl, "events-view")
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    core.create_namespaced_event(
        namespace, kubernetes.client.CoreV1Event.model_validate(CORE_EVENT)
    )
    selectors = [
        "involvedObject.apiVersion=apps/v1",
        "involvedObject.fieldPath=spec.template",
        "involvedObject.resourceVersion=7",
        "source=deployment-controller",
        "reportingComponent=deployment-controller",
        "involvedObject.kind=Deployment,reason=ScalingReplicaSet,type=Normal",
    ]
    for selector in selectors:
        names = [
            e.metadata.name
            for e in core.list_namespaced_event(namespace, field_selector=selector).items
            if e.metadata
        ]
        assert names == ["web.1"], selector
    assert core.list_namespaced_event(namespace, field_selector="source=kubelet").items == []
    with pytest.raises(kubernetes.client.ApiException) as raised:
        core.list_namespaced_event(namespace, field_selector="note=x")
    assert raised.value.status == 400


def test_events_k8s_io_is_a_view_of_core_events(cluster: LocalCluster, kubectl: Kubectl) -> None:
    namespace = _namespace(kubectl, "events-view")
    client = cluster.api_client()
    core = kubernetes.client.CoreV1Api(client)
    events = kubernetes.client.EventsV1Api(client)
    if not core.list_namespaced_event(namespace, field_selector="metadata.name=web.1").items:
        core.create_namespaced_event(
            namespace, kubernetes.client.CoreV1Event.model_validate(CORE_EVENT)
        )
    view = _get(kubectl, "events.v1.events.k8s.io", "web.1", "-n", namespace)
    assert view["apiVersion"] == "events.k8s.io/v1"
    assert view["regarding"] == CORE_EVENT["involvedObject"]
    assert (view["note"], view["reportingController"]) == (
        "Scaled up replica set web-1 to 1",
        "deployment-controller",
    )
    assert view["deprecatedSource"] == {"component": "deployment-controller"}
    assert (view["deprecatedCount"], view["eventTime"]) == (2, None)
    assert "involvedObject" not in view and "message" not in view
    for selector in (
        "regarding.kind=Deployment",
        "regarding.name=web",
        "reason=ScalingReplicaSet",
        "regarding.namespace=events-view",
        "reportingController=deployment-controller",
    ):
        found = kubectl(
            "get",
            "events.v1.events.k8s.io",
            "-n",
            namespace,
            "--field-selector",
            selector,
            "-o",
            "name",
        ).stdout
        assert found == "event.events.k8s.io/web.1\n", selector
    # (The official client cannot read an event without eventTime from events.k8s.io, as with
    # kube-apiserver.) Writes through the view land in the one store of events.
    created = events.create_namespaced_event(
        namespace,
        kubernetes.client.EventsV1Event.model_validate(
            {
                "metadata": {"name": "web.2"},
                "eventTime": "2026-01-01T00:00:06.000000Z",
                "regarding": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": "web-1",
                    "namespace": namespace,
                },
                "note": "probe failed",
                "reason": "Unhealthy",
                "type": "Warning",
                "action": "Probing",
                "reportingController": "kubelet",
                "reportingInstance": "local",
            }
        ),
    )
    assert created.note == "probe failed"
    stored = core.read_namespaced_event("web.2", namespace)
    assert (stored.message, stored.involved_object.name, stored.reporting_component) == (
        "probe failed",
        "web-1",
        "kubelet",
    )
    events.patch_namespaced_event("web.2", namespace, {"note": "probe failed twice"})
    assert core.read_namespaced_event("web.2", namespace).message == "probe failed twice"
    events.delete_namespaced_event("web.2", namespace)
    assert [e.metadata.name for e in core.list_namespaced_event(namespace).items if e.metadata] == [
        "web.1"
    ]


def test_events_k8s_io_watch_shows_the_view(cluster: LocalCluster, kubectl: Kubectl) -> None:
    namespace = _namespace(kubectl, "events-watch")
    client = cluster.api_client()
    involved = {**CORE_EVENT["involvedObject"], "namespace": namespace}
    kubernetes.client.CoreV1Api(client).create_namespaced_event(
        namespace,
        kubernetes.client.CoreV1Event.model_validate({**CORE_EVENT, "involvedObject": involved}),
    )
    url = (
        f"{cluster.url}/apis/events.k8s.io/v1/namespaces/{namespace}/events?watch=true"
        "&fieldSelector=regarding.kind%3DDeployment&timeoutSeconds=1"
    )
    with urllib.request.urlopen(url, context=cluster.ssl_context()) as stream:
        first = json.loads(stream.readline())
    assert first["type"] == "ADDED"
    assert first["object"]["apiVersion"] == "events.k8s.io/v1"
    assert first["object"]["note"] == "Scaled up replica set web-1 to 1"


def test_generation_is_kept_only_by_kinds_with_a_spec(kubectl: Kubectl) -> None:
    namespace = _namespace(kubectl, "generations")
    documents = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}},
        *CHART_OBJECTS,
    ]
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(documents))
    listed = _get(kubectl, "cm,secret,sa,role,pdb,ing,netpol,hpa,pvc", "-n", namespace)["items"]
    generations = {
        (item["kind"], item["metadata"]["name"]): item["metadata"].get("generation")
        for item in listed
    }
    assert generations[("PodDisruptionBudget", "web")] == 1
    assert generations[("Ingress", "web")] == 1
    assert generations[("NetworkPolicy", "web")] == 1
    for kind, name in [
        ("ConfigMap", "c"),
        ("Secret", "s"),
        ("ServiceAccount", "robot"),
        ("Role", "reader"),
        ("HorizontalPodAutoscaler", "web"),
        ("PersistentVolumeClaim", "data"),
    ]:
        assert generations[(kind, name)] is None, kind
    kubectl("patch", "cm", "c", "-n", namespace, "-p", '{"data":{"a":"2"}}')
    assert "generation" not in _get(kubectl, "cm", "c", "-n", namespace)["metadata"]
    kubectl("patch", "pdb", "web", "-n", namespace, "-p", '{"spec":{"minAvailable":2}}')
    assert _get(kubectl, "pdb", "web", "-n", namespace)["metadata"]["generation"] == 2


def test_kubectl_logs_of_a_job_reads_its_own_pod(kubectl: Kubectl) -> None:
    namespace = _namespace(kubectl, "job-logs")
    template = {
        "metadata": {"labels": {"app": "batch"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1"}]},
    }
    jobs = [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {"template": template},
        }
        for name in ("first", "second")
    ]
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(jobs))
    for name in ("first", "second"):
        selector = f"batch.kubernetes.io/job-name={name}"
        wait_for(functools.partial(_output, kubectl, "get", "pod", "-l", selector, "-n", namespace))
    pods = _get(kubectl, "pods", "-n", namespace)["items"]
    owner = {p["metadata"]["name"]: p["metadata"]["ownerReferences"][0]["name"] for p in pods}
    verbose = kubectl("logs", "job/second", "-n", namespace, "-v=6").stderr
    read = [
        line.split("/pods/")[1].split("/")[0]
        for line in verbose.splitlines()
        if "/log" in line and " GET " in line
    ]
    assert read and {owner[pod] for pod in read} == {"second"}


def test_kubectl_create_from_flags_is_told_what_works(kubectl: Kubectl) -> None:
    refused = kubectl("create", "configmap", "flags", "--from-literal=a=1", check=False)
    assert refused.returncode != 0
    assert "`kubectl apply -f FILE`" in refused.stderr
    assert "`kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`" in refused.stderr
    manifest = kubectl(
        "create", "configmap", "flags", "--from-literal=a=1", "--dry-run=client", "-o", "yaml"
    ).stdout
    assert kubectl("apply", "-f", "-", stdin=manifest).stdout == "configmap/flags created\n"


def _deployment(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": image, "ports": [{"containerPort": 80}]}
                    ]
                },
            },
        },
    }


def _revisions(kubectl: Kubectl, namespace: str) -> dict[str, tuple[str, str]]:
    """Each ReplicaSet's revision annotation and image."""
    return {
        rs["metadata"]["name"]: (
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            rs["spec"]["template"]["spec"]["containers"][0]["image"],
        )
        for rs in _get(kubectl, "rs", "-n", namespace)["items"]
    }


def test_kubectl_rollout_undo_reuses_the_old_replica_set(kubectl: Kubectl) -> None:
    namespace = _namespace(kubectl, "rollouts")
    for image in ("nginx:1", "nginx:2"):
        kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(_deployment(image)))
        kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=20s")
    before = _revisions(kubectl, namespace)
    assert sorted(before.values()) == [("1", "nginx:1"), ("2", "nginx:2")]
    undo = kubectl("rollout", "undo", "deployment/web", "-n", namespace).stdout
    assert undo == "deployment.apps/web rolled back\n"
    kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=20s")
    after = _revisions(kubectl, namespace)
    assert after.keys() == before.keys()
    assert sorted(after.values()) == [("2", "nginx:2"), ("3", "nginx:1")]
