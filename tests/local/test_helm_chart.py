"""A typical application chart, rendered by Helm's own engine and applied with kubectl, as Argo
CD and Flux do: RBAC, a ServiceAccount, a PersistentVolumeClaim, a PodDisruptionBudget, an
autoscaler, an Ingress and a NetworkPolicy are taken, and the workload runs on the claim."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from kubectl_runner import Kubectl, kubectl_runner

from gyre_local.cluster import LocalCluster, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.kubectl, pytest.mark.slow]

CHART = Path(__file__).parent / "charts" / "webapp"
RELEASE = "demo"
KUBE_VERSION = "1.32.0"
APPLY_MODES = {"client-side": (), "server-side": ("--server-side",)}


@pytest.fixture(scope="module")
def kubectl(process_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl against the module's process-kubelet cluster."""
    return kubectl_runner(process_cluster.kubeconfig_path, tmp_path_factory.mktemp("kubecache"))


def render(namespace: str, values: dict[str, object] | None = None) -> str:
    """The chart's manifests for release RELEASE in namespace, as `helm template` prints them."""
    with helm.Chart.load(str(CHART)) as chart:
        templates = chart.render(values or {}, name=RELEASE, namespace=namespace)
    return "\n---\n".join(text for _path, text in sorted(templates.items()) if text.strip())


@pytest.fixture(params=sorted(APPLY_MODES))
def release(
    request: pytest.FixtureRequest, kubectl: Kubectl, tmp_path: Path
) -> Iterator[tuple[Path, str, tuple[str, ...]]]:
    """The rendered chart applied to a namespace of its own, one per apply mode; the
    manifest file, the namespace and the apply flags. Deleted with the namespace afterwards."""
    namespace = f"helm-{request.param}"
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n",
    )
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(render(namespace))
    yield manifest, namespace, APPLY_MODES[request.param]
    kubectl("delete", "namespace", namespace, "--wait=false")


def test_the_chart_lints_without_errors() -> None:
    result = helm.lint(str(CHART), {}, strict=True, kube_version=KUBE_VERSION)
    assert result["errors"] == []


def test_a_value_against_the_chart_schema_is_refused_naming_it() -> None:
    with (
        helm.Chart.load(str(CHART)) as chart,
        pytest.raises(helm.HelmValuesError, match="replicas"),
    ):
        chart.render({"replicas": 0}, name=RELEASE, namespace="default")


def test_every_rendered_kind_is_served(kubectl: Kubectl) -> None:
    kinds = {document["kind"] for document in yaml.safe_load_all(render("default")) if document}
    assert kinds == {
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    }
    served = {
        line.split()[-1] for line in kubectl("api-resources", "--no-headers").stdout.splitlines()
    }
    assert kinds <= served, kinds - served


def test_the_rendered_chart_applies_and_its_workload_runs_on_the_claim(
    kubectl: Kubectl, process_cluster: LocalCluster, release: tuple[Path, str, tuple[str, ...]]
) -> None:
    manifest, namespace, flags = release
    applied = kubectl("apply", "-n", namespace, *flags, "-f", str(manifest)).stdout.splitlines()
    assert len(applied) == 13
    assert all(line.endswith(("created", "serverside-applied")) for line in applied), applied

    kubectl("rollout", "status", "-n", namespace, f"deployment/{RELEASE}-webapp", "--timeout=60s")
    claim = yaml.safe_load(
        kubectl("get", "pvc", "-n", namespace, f"{RELEASE}-webapp-data", "-o", "yaml").stdout
    )
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "standard"

    # The init container wrote the ConfigMap's content onto the claim; the web containers
    # serve it from there, through the Service.
    served = wait_for(
        lambda: (
            kubectl(
                "get",
                "--raw",
                f"/api/v1/namespaces/{namespace}/services/{RELEASE}-webapp:http/proxy/index.txt",
                check=False,
            ).stdout
        )
    )
    assert served == "hello from the claim"
    account = f"system:serviceaccount:{namespace}:{RELEASE}-webapp"
    assert (
        kubectl("auth", "can-i", "list", "pods", "-n", namespace, "--as", account).stdout == "yes\n"
    )


def test_applying_the_same_render_again_changes_nothing(
    kubectl: Kubectl, release: tuple[Path, str, tuple[str, ...]]
) -> None:
    manifest, namespace, flags = release
    kubectl("apply", "-n", namespace, *flags, "-f", str(manifest))
    versions = resource_versions(kubectl, namespace)

    again = kubectl("apply", "-n", namespace, *flags, "-f", str(manifest)).stdout.splitlines()
    diff = kubectl("diff", "-n", namespace, *flags, "-f", str(manifest), check=False)

    if not flags:
        # kubectl's patch is never empty for a PDB (its selector's patchStrategy is replace)
        # nor for a NetworkPolicy (the defaulted port protocol sits in an atomic list): a real
        # cluster also prints "configured" for them, and stores nothing new.
        changed = [line for line in again if not line.endswith("unchanged")]
        assert changed == [
            f"networkpolicy.networking.k8s.io/{RELEASE}-webapp configured",
            f"poddisruptionbudget.policy/{RELEASE}-webapp configured",
        ]
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert resource_versions(kubectl, namespace) == versions


def resource_versions(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    """The resourceVersion of each of the release's objects that no controller writes to."""
    listed = kubectl(
        "get",
        "configmap,networkpolicy,role,rolebinding,serviceaccount,ingress",
        "-n",
        namespace,
        "-l",
        f"app.kubernetes.io/instance={RELEASE}",
        "-o",
        "json",
    ).stdout
    return {
        f"{item['kind']}/{item['metadata']['name']}": item["metadata"]["resourceVersion"]
        for item in json.loads(listed)["items"]
    }


def test_an_upgrade_rolls_the_deployment_and_deleting_the_release_removes_it(
    kubectl: Kubectl, release: tuple[Path, str, tuple[str, ...]]
) -> None:
    manifest, namespace, flags = release
    kubectl("apply", "-n", namespace, *flags, "-f", str(manifest))
    kubectl("rollout", "status", "-n", namespace, f"deployment/{RELEASE}-webapp", "--timeout=60s")

    manifest.write_text(render(namespace, {"content": "second release"}))
    kubectl("apply", "-n", namespace, *flags, "-f", str(manifest))
    kubectl("rollout", "status", "-n", namespace, f"deployment/{RELEASE}-webapp", "--timeout=60s")
    history = kubectl("rollout", "history", "-n", namespace, f"deployment/{RELEASE}-webapp").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]

    kubectl("delete", "-n", namespace, "-f", str(manifest), "--wait=true", "--timeout=60s")
    left = kubectl(
        "get", "all,pvc,pdb,ingress,networkpolicy,role,rolebinding", "-n", namespace, "-o", "name"
    )
    assert [name for name in left.stdout.split() if not name.startswith("service/kubernetes")] == []
