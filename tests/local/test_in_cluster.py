"""In-cluster access on the local cluster: HTTPS with the cluster's CA, the `kubernetes`
Service, kube-root-ca.crt, ServiceAccount admission, and pods that reach the API server with
their projected token as in-cluster clients do, the Gyre operator among them."""

from __future__ import annotations

import base64
import json
import ssl
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from kubectl_runner import Kubectl, kubectl_runner
from kubernetes import client

from gyre_local.certificates import ensure_pki
from gyre_local.cluster import LocalCluster, running_cluster, wait_for
from gyre_local.controllers.system import API_SERVICE_IP

REPO = Path(__file__).resolve().parents[2]
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# The pod programs below compute the service account directory from these two halves, as the
# kubernetes client's in-cluster loader does: a literal path in a command would be rewritten.
PROGRAM_PRELUDE = """
import json, os
mount = "/var/run/secrets/" + "kubernetes.io/serviceaccount"
directory = json.loads(os.environ["GYRE_MOUNTS"])[mount]
"""


@pytest.fixture(scope="module")
def kubectl(process_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl with the cluster's own kubeconfig (CA-verified HTTPS, no skip-verify)."""
    return kubectl_runner(process_cluster.kubeconfig_path, tmp_path_factory.mktemp("kube-cache"))


def _core(cluster: LocalCluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api_client())


def _run_pod(cluster: LocalCluster, name: str, program: str, **spec: Any) -> dict[str, Any]:
    """Run `python -c program` as a process pod to its end; the finished pod."""
    pod = {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "local/python",
                    "command": ["python", "-c", PROGRAM_PRELUDE + textwrap.dedent(program)],
                }
            ],
            **spec,
        },
    }
    core = _core(cluster)
    core.create_namespaced_pod("default", pod)

    def finished() -> dict[str, Any] | None:
        read = core.read_namespaced_pod(name, "default").to_dict()
        return read if read["status"]["phase"] in ("Succeeded", "Failed") else None

    return wait_for(finished, timeout=30)


def _logs(cluster: LocalCluster, name: str) -> str:
    return str(_core(cluster).read_namespaced_pod_log(name, "default"))


# ---- serving over HTTPS ----


def test_kubectl_verifies_the_api_server_against_the_kubeconfig_ca(kubectl: Kubectl) -> None:
    version = json.loads(kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    whoami = kubectl("auth", "whoami", "-o", "json")
    user = json.loads(whoami.stdout)["status"]["userInfo"]
    assert user["username"] == "local-admin"
    assert "system:masters" in user["groups"]


def test_kubeconfig_holds_the_ca_and_a_client_certificate(process_cluster: LocalCluster) -> None:
    config = yaml.safe_load(process_cluster.kubeconfig_path.read_text())
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == process_cluster.url
    assert process_cluster.url.startswith("https://127.0.0.1:")
    assert "insecure-skip-tls-verify" not in cluster
    assert set(config["users"][0]["user"]) == {"client-certificate-data", "client-key-data"}
    assert process_cluster.kubeconfig_path.stat().st_mode & 0o077 == 0


def test_requests_without_the_ca_are_refused_and_with_it_served(
    process_cluster: LocalCluster,
) -> None:
    url = f"{process_cluster.url}/version"
    untrusting = ssl.create_default_context()
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(url, context=untrusting, timeout=5)
    with urllib.request.urlopen(url, context=process_cluster.ssl_context(), timeout=5) as answer:
        assert answer.status == 200


def _alternative_names(path: Path) -> x509.SubjectAlternativeName:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def _dns_names(path: Path) -> set[str]:
    return set(_alternative_names(path).get_values_for_type(x509.DNSName))


def test_the_serving_certificate_names_the_in_cluster_addresses(
    process_cluster: LocalCluster,
) -> None:
    names = _alternative_names(process_cluster.pki.serving_cert)
    dns = _dns_names(process_cluster.pki.serving_cert)
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert dns >= {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
    assert ips >= {"127.0.0.1", API_SERVICE_IP}
    for key in (process_cluster.pki.ca_key, process_cluster.pki.serving_key):
        assert key.stat().st_mode & 0o777 == 0o600


def test_a_restart_on_the_same_state_directory_keeps_the_ca(tmp_path: Path) -> None:
    with running_cluster(state_dir=tmp_path) as first:
        ca = first.ca_path.read_bytes()
    with running_cluster(state_dir=tmp_path) as second:
        assert second.ca_path.read_bytes() == ca
        assert _core(second).read_namespace("default").metadata.name == "default"


def test_a_serving_certificate_missing_a_name_is_replaced_under_the_same_ca(
    tmp_path: Path,
) -> None:
    first = ensure_pki(tmp_path, ["127.0.0.1"])
    ca, serving = first.ca_cert.read_bytes(), first.serving_cert.read_bytes()
    assert ensure_pki(tmp_path, ["127.0.0.1"]).serving_cert.read_bytes() == serving
    second = ensure_pki(tmp_path, ["gyre.example"])
    assert second.ca_cert.read_bytes() == ca
    assert second.serving_cert.read_bytes() != serving
    assert "gyre.example" in _dns_names(second.serving_cert)


# ---- system objects ----


def test_the_kubernetes_service_names_the_api_server(process_cluster: LocalCluster) -> None:
    core = _core(process_cluster)
    service = core.read_namespaced_service("kubernetes", "default")
    assert service.metadata.labels == {"component": "apiserver", "provider": "kubernetes"}
    assert service.spec.type == "ClusterIP"
    assert service.spec.cluster_ip == API_SERVICE_IP
    assert service.spec.selector is None
    [port] = service.spec.ports
    assert (port.name, port.port, port.protocol) == ("https", 443, "TCP")
    assert port.target_port == process_cluster.port
    assert "local.gyre.dev/url" not in (service.metadata.annotations or {})
    endpoints = core.read_namespaced_endpoints("kubernetes", "default")
    [subset] = endpoints.subsets
    assert [a.ip for a in subset.addresses] == ["127.0.0.1"]
    assert [(p.name, p.port, p.protocol) for p in subset.ports] == [
        ("https", process_cluster.port, "TCP")
    ]
    [endpoint_slice] = (
        client.DiscoveryV1Api(process_cluster.api_client())
        .list_namespaced_endpoint_slice(
            "default", label_selector="kubernetes.io/service-name=kubernetes"
        )
        .items
    )
    assert endpoint_slice.metadata.name == "kubernetes"
    assert [e.addresses for e in endpoint_slice.endpoints] == [["127.0.0.1"]]
    assert [(p.name, p.port) for p in endpoint_slice.ports] == [("https", process_cluster.port)]


def test_the_kubernetes_service_and_endpoints_come_back_after_delete(
    process_cluster: LocalCluster,
) -> None:
    core = _core(process_cluster)
    old = core.read_namespaced_service("kubernetes", "default").metadata.uid
    core.delete_namespaced_service("kubernetes", "default")

    def recreated() -> Any:
        try:
            service = core.read_namespaced_service("kubernetes", "default")
            core.read_namespaced_endpoints("kubernetes", "default")
        except client.ApiException:
            return None
        return service if service.metadata.uid != old else None

    service = wait_for(recreated, timeout=10)
    assert service.spec.cluster_ip == API_SERVICE_IP
    core.delete_namespaced_endpoints("kubernetes", "default")
    endpoints = wait_for(lambda: _endpoints_or_none(core), timeout=10)
    assert endpoints.subsets[0].ports[0].port == process_cluster.port


def _endpoints_or_none(core: client.CoreV1Api) -> Any:
    try:
        return core.read_namespaced_endpoints("kubernetes", "default")
    except client.ApiException:
        return None


def test_every_namespace_gets_kube_root_ca_and_keeps_it(process_cluster: LocalCluster) -> None:
    core = _core(process_cluster)
    core.create_namespace({"metadata": {"name": "root-ca"}})
    ca = process_cluster.ca_path.read_text()

    def published() -> Any:
        try:
            return core.read_namespaced_config_map("kube-root-ca.crt", "root-ca")
        except client.ApiException:
            return None

    configmap = wait_for(published, timeout=10)
    assert configmap.data == {"ca.crt": ca}
    assert "kube-apiserver" in configmap.metadata.annotations["kubernetes.io/description"]
    core.patch_namespaced_config_map("kube-root-ca.crt", "root-ca", {"data": {"ca.crt": "x"}})
    wait_for(lambda: (published() or configmap).data == {"ca.crt": ca}, timeout=10)
    core.delete_namespaced_config_map("kube-root-ca.crt", "root-ca")
    wait_for(published, timeout=10)


# ---- ServiceAccount admission ----


def _admitted(cluster: LocalCluster, name: str, **spec: Any) -> dict[str, Any]:
    pod = {
        "metadata": {"name": name, "annotations": {"local.gyre.dev/kubelet": "simulated"}},
        "spec": {
            "initContainers": [{"name": "init", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}],
            **spec,
        },
    }
    created: dict[str, Any] = client.ApiClient().sanitize_for_serialization(
        _core(cluster).create_namespaced_pod("default", pod)
    )
    return created


def test_admission_mounts_the_service_account_token_volume(
    process_cluster: LocalCluster,
) -> None:
    spec = _admitted(process_cluster, "admitted")["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    [volume] = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == 21
    assert volume["projected"] == {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }
    mount = {"name": volume["name"], "readOnly": True, "mountPath": MOUNT_PATH}
    for container in [*spec["initContainers"], *spec["containers"]]:
        assert container["volumeMounts"] == [mount]


def test_admission_keeps_a_container_own_mount_at_the_path(process_cluster: LocalCluster) -> None:
    own = {"name": "own", "mountPath": MOUNT_PATH}
    spec = _admitted(
        process_cluster,
        "own-mount",
        volumes=[{"name": "own", "emptyDir": {}}],
        containers=[
            {"name": "a", "image": "x", "volumeMounts": [own]},
            {"name": "b", "image": "x"},
        ],
    )["spec"]
    assert spec["containers"][0]["volumeMounts"] == [own]
    token_volume = spec["containers"][1]["volumeMounts"][0]["name"]
    assert [v["name"] for v in spec["volumes"]] == ["own", token_volume]


def test_no_token_volume_when_the_pod_turns_automount_off(process_cluster: LocalCluster) -> None:
    spec = _admitted(process_cluster, "no-automount", automountServiceAccountToken=False)["spec"]
    assert "volumes" not in spec
    assert all("volumeMounts" not in c for c in spec["containers"])


def test_the_service_account_setting_applies_unless_the_pod_sets_its_own(
    process_cluster: LocalCluster,
) -> None:
    core = _core(process_cluster)
    core.create_namespaced_service_account(
        "default", {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False}
    )
    quiet = _admitted(process_cluster, "quiet", serviceAccountName="quiet")["spec"]
    assert quiet["serviceAccount"] == "quiet"
    assert "volumes" not in quiet
    loud = _admitted(
        process_cluster, "loud", serviceAccountName="quiet", automountServiceAccountToken=True
    )["spec"]
    assert loud["volumes"][0]["name"].startswith("kube-api-access-")


# ---- pods reaching the API server ----


def test_a_pod_sees_the_kubernetes_service_variables_and_no_kubeconfig(
    process_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kubelet's own KUBECONFIG must not leak into pods.
    monkeypatch.setenv("KUBECONFIG", "/nowhere/kubeconfig")
    program = """
    names = ("KUBERNETES", "KUBECONFIG")
    print(json.dumps({k: v for k, v in os.environ.items() if k.startswith(names)}))
    print(json.dumps(sorted(os.listdir(directory))))
    print(open(os.path.join(directory, "namespace")).read())
    """
    pod = _run_pod(process_cluster, "env", program)
    assert pod["status"]["phase"] == "Succeeded", _logs(process_cluster, "env")
    variables, files, namespace = _logs(process_cluster, "env").splitlines()[:3]
    port = str(process_cluster.port)
    address = f"tcp://127.0.0.1:{port}"
    assert json.loads(variables) == {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": address,
        "KUBERNETES_PORT_443_TCP": address,
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": port,
        "KUBERNETES_PORT_443_TCP_ADDR": "127.0.0.1",
    }
    assert json.loads(files) == ["ca.crt", "namespace", "token"]
    assert namespace == "default"


def test_a_pod_token_authenticates_as_its_service_account_in_cluster(
    process_cluster: LocalCluster,
) -> None:
    program = """
    from kubernetes import client
    from kubernetes.config.incluster_config import InClusterConfigLoader
    configuration = client.Configuration()
    InClusterConfigLoader(
        token_filename=os.path.join(directory, "token"),
        cert_filename=os.path.join(directory, "ca.crt"),
    ).load_and_set(configuration)
    api = client.ApiClient(configuration)
    print(client.CoreV1Api(api).read_namespace("default").metadata.name)
    token = open(os.path.join(directory, "token")).read()
    print(token)
    """
    pod = _run_pod(process_cluster, "in-cluster", program)
    log = _logs(process_cluster, "in-cluster")
    assert pod["status"]["phase"] == "Succeeded", log
    namespace, token = log.splitlines()[:2]
    assert namespace == "default"
    review = client.AuthenticationV1Api(process_cluster.api_client()).create_token_review(
        {"spec": {"token": token}}
    )
    assert review.status.authenticated
    assert review.status.user.username == "system:serviceaccount:default:default"
    assert review.status.user.extra["authentication.kubernetes.io/pod-name"] == ["in-cluster"]
    _core(process_cluster).delete_namespaced_pod("in-cluster", "default")
    after = client.AuthenticationV1Api(process_cluster.api_client()).create_token_review(
        {"spec": {"token": token}}
    )
    assert not after.status.authenticated


def _claims(token: str) -> dict[str, Any]:
    """The claims of a JWT (unverified)."""
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded


def test_token_requests_bound_to_a_pod_as_the_kubelet_makes_them(
    process_cluster: LocalCluster,
) -> None:
    core = _core(process_cluster)
    pod = _admitted(process_cluster, "bound")
    reference = {"kind": "Pod", "apiVersion": "v1", "name": "bound", "uid": pod["metadata"]["uid"]}
    request = {"spec": {"expirationSeconds": 3607, "boundObjectRef": reference}}
    issued = core.create_namespaced_service_account_token("default", "default", request)
    claims = _claims(issued.status.token)
    assert claims["kubernetes.io"]["pod"] == {"name": "bound", "uid": pod["metadata"]["uid"]}
    # Extended to a year, while the status reports the lifetime asked for.
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
    reported = issued.status.expiration_timestamp.timestamp() - claims["iat"]
    assert 3600 < reported < 3620
    stale = {"spec": {"boundObjectRef": {**reference, "uid": "0"}}}
    with pytest.raises(client.ApiException) as conflict:
        core.create_namespaced_service_account_token("default", "default", stale)
    assert conflict.value.status == 409
    missing = {"spec": {"boundObjectRef": {**reference, "name": "absent", "uid": None}}}
    with pytest.raises(client.ApiException) as not_found:
        core.create_namespaced_service_account_token("default", "default", missing)
    assert not_found.value.status == 404


# ---- the operator, in a pod ----


@pytest.fixture(scope="module")
def gyre_cluster() -> Iterator[LocalCluster]:
    """Pods simulated except those asking for the process kubelet; Gyre's CRDs installed."""
    with running_cluster(kubelet="simulated", crds=[REPO / "crds"]) as cluster:
        yield cluster


def test_the_operator_in_a_pod_connects_in_cluster_and_reconciles(
    gyre_cluster: LocalCluster,
) -> None:
    operator = {
        "metadata": {
            "name": "gyre-operator",
            "annotations": {"local.gyre.dev/kubelet": "process"},
        },
        "spec": {
            "containers": [
                {
                    "name": "operator",
                    "image": "gyre-operator:dev",
                    "args": [
                        "operator",
                        "--namespace=default",
                        "--metrics-port=$(GYRE_PORT_METRICS)",
                        "--health-port=$(GYRE_PORT_HEALTH)",
                        "--log-format=plain",
                    ],
                    "ports": [
                        {"name": "metrics", "containerPort": 8080},
                        {"name": "health", "containerPort": 8081},
                    ],
                }
            ]
        },
    }
    core = _core(gyre_cluster)
    core.create_namespaced_pod("default", operator)
    dataset = yaml.safe_load((REPO / "examples" / "01-dataset.yaml").read_text())
    custom = client.CustomObjectsApi(gyre_cluster.api_client())
    custom.create_namespaced_custom_object("gyre.dev", "v1alpha1", "default", "datasets", dataset)

    def reconciled() -> bool:
        wine = custom.get_namespaced_custom_object(
            "gyre.dev", "v1alpha1", "default", "datasets", "wine"
        )
        conditions = (wine.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" for c in conditions)

    try:
        wait_for(reconciled, timeout=60)
    finally:
        log = gyre_cluster.kubelet.read_log("default", "gyre-operator", None)
        core.delete_namespaced_pod("gyre-operator", "default")
    jobs = client.BatchV1Api(gyre_cluster.api_client()).list_namespaced_job("default")
    assert jobs.items, log
