"""PersistentVolumes: the PersistentVolume controller binds claims, provisioning a directory
volume per claim, and reclaims it (process kubelet, so pods really share the directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubectl_runner import Kubectl, kubectl_runner
from kubernetes import client
from kubernetes.client.rest import ApiException

from gyre_local.cluster import LocalCluster, wait_for

pytestmark = pytest.mark.cluster
NS = "default"


@pytest.fixture(scope="module")
def core(process_cluster: LocalCluster) -> client.CoreV1Api:
    return client.CoreV1Api(process_cluster.api_client())


@pytest.fixture(scope="module")
def kubectl(process_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return kubectl_runner(process_cluster.kubeconfig_path, tmp_path_factory.mktemp("kubecache"))


def claim(name: str, storage: str = "1Gi", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": storage}},
            **spec,
        },
    }


def bound(core: client.CoreV1Api, name: str) -> Any:
    found = core.read_namespaced_persistent_volume_claim(name, NS)
    return found if found.status.phase == "Bound" else None


def gone(read: Any, *args: str) -> bool:
    try:
        read(*args)
    except ApiException as error:
        return error.status == 404
    return False


def test_a_claim_of_the_default_class_gets_a_provisioned_volume(
    process_cluster: LocalCluster, core: client.CoreV1Api
) -> None:
    created = core.create_namespaced_persistent_volume_claim(NS, claim("data", "2Gi"))
    assert created.status.phase == "Pending"
    found = wait_for(lambda: bound(core, "data"))
    volume_name = f"pvc-{created.metadata.uid}"
    assert found.spec.volume_name == volume_name
    assert found.status.capacity == {"storage": "2Gi"}
    assert found.status.access_modes == ["ReadWriteOnce"]
    assert found.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    annotations = found.metadata.annotations
    assert annotations["pv.kubernetes.io/bind-completed"] == "yes"
    assert annotations["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert annotations["volume.kubernetes.io/storage-provisioner"] == "local.gyre.dev/directory"

    volume = core.read_persistent_volume(volume_name)
    assert volume.status.phase == "Bound"
    assert volume.spec.capacity == {"storage": "2Gi"}
    assert volume.spec.access_modes == ["ReadWriteOnce"]
    assert volume.spec.persistent_volume_reclaim_policy == "Delete"
    assert volume.spec.storage_class_name == "standard"
    assert volume.spec.volume_mode == "Filesystem"
    reference = volume.spec.claim_ref
    assert (reference.kind, reference.namespace, reference.name, reference.uid) == (
        "PersistentVolumeClaim",
        NS,
        "data",
        created.metadata.uid,
    )
    assert volume.metadata.annotations == {
        "pv.kubernetes.io/provisioned-by": "local.gyre.dev/directory"
    }
    assert volume.metadata.finalizers == ["kubernetes.io/pv-protection"]
    directory = process_cluster.kubelet.claim_directory(NS, "data")
    assert volume.spec.host_path.path == str(directory)
    assert directory.is_dir()


def test_kubectl_shows_the_volume_and_the_bound_claim(
    core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    created = core.create_namespaced_persistent_volume_claim(NS, claim("shown", "3Gi"))
    wait_for(lambda: bound(core, "shown"))
    volume_name = f"pvc-{created.metadata.uid}"
    lines = kubectl("get", "pv", volume_name, "-o", "wide").stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "CAPACITY",
        "ACCESS",
        "MODES",
        "RECLAIM",
        "POLICY",
        "STATUS",
        "CLAIM",
        "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS",
        "REASON",
        "AGE",
        "VOLUMEMODE",
    ]
    cells = lines[1].split()
    assert cells[:7] == [volume_name, "3Gi", "RWO", "Delete", "Bound", f"{NS}/shown", "standard"]
    assert cells[7] == "<unset>" and cells[-1] == "Filesystem"
    claim_cells = kubectl("get", "pvc", "shown").stdout.splitlines()[1].split()
    assert claim_cells[:6] == ["shown", "Bound", volume_name, "3Gi", "RWO", "standard"]


def test_deleting_the_claim_deletes_its_volume_and_directory(
    process_cluster: LocalCluster, core: client.CoreV1Api
) -> None:
    created = core.create_namespaced_persistent_volume_claim(NS, claim("doomed"))
    wait_for(lambda: bound(core, "doomed"))
    directory = process_cluster.kubelet.claim_directory(NS, "doomed")
    (directory / "file").write_text("data")
    core.delete_namespaced_persistent_volume_claim("doomed", NS)
    wait_for(lambda: gone(core.read_persistent_volume, f"pvc-{created.metadata.uid}"))
    assert not directory.exists()


def test_a_claim_of_an_unknown_class_stays_pending_until_the_class_exists(
    process_cluster: LocalCluster, core: client.CoreV1Api
) -> None:
    core.create_namespaced_persistent_volume_claim(NS, claim("fancy", storageClassName="fast"))

    def failure() -> Any:
        events = core.list_namespaced_event(
            NS, field_selector="involvedObject.name=fancy,reason=ProvisioningFailed"
        ).items
        return events[0] if events else None

    event = wait_for(failure)
    assert event.type == "Warning"
    assert event.message == 'storageclass.storage.k8s.io "fast" not found'
    assert event.source.component == "persistentvolume-controller"
    assert core.read_namespaced_persistent_volume_claim("fancy", NS).status.phase == "Pending"
    storage = client.StorageV1Api(core.api_client)
    storage.create_storage_class(
        {
            "metadata": {"name": "fast"},
            "provisioner": "example.com/fast",
            "reclaimPolicy": "Retain",
        }
    )
    found = wait_for(lambda: bound(core, "fancy"))
    volume = core.read_persistent_volume(found.spec.volume_name)
    assert volume.spec.persistent_volume_reclaim_policy == "Retain"
    assert volume.metadata.annotations["pv.kubernetes.io/provisioned-by"] == "example.com/fast"
    # Retained: the volume outlives its claim, Released, and binds no other claim.
    core.delete_namespaced_persistent_volume_claim("fancy", NS)
    wait_for(lambda: core.read_persistent_volume(found.spec.volume_name).status.phase == "Released")


def test_a_claim_without_a_class_binds_an_available_volume_that_fits(
    core: client.CoreV1Api, tmp_path: Path
) -> None:
    for name, size in (("small", "1Gi"), ("large", "10Gi"), ("medium", "5Gi")):
        core.create_persistent_volume(
            {
                "metadata": {"name": f"static-{name}"},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                    "hostPath": {"path": str(tmp_path / name)},
                    "storageClassName": "",
                },
            }
        )
    assert core.read_persistent_volume("static-small").status.phase == "Pending"
    core.create_namespaced_persistent_volume_claim(NS, claim("picky", "2Gi", storageClassName=""))
    found = wait_for(lambda: bound(core, "picky"))
    assert found.spec.volume_name == "static-medium"
    assert found.status.capacity == {"storage": "5Gi"}
    volume = core.read_persistent_volume("static-medium")
    assert volume.spec.claim_ref.name == "picky"
    assert volume.spec.persistent_volume_reclaim_policy == "Retain"
    assert found.metadata.annotations["pv.kubernetes.io/bound-by-controller"] == "yes"


def test_pods_share_the_claim_directory(
    process_cluster: LocalCluster, core: client.CoreV1Api
) -> None:
    created = core.create_namespaced_persistent_volume_claim(NS, claim("shared"))
    wait_for(lambda: bound(core, "shared"))

    def pod(name: str, script: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": "local/python",
                        "command": ["python", "-c", script],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}],
            },
        }

    def succeeded(name: str) -> bool:
        phase = core.read_namespaced_pod(name, NS).status.phase
        assert phase != "Failed"
        return bool(phase == "Succeeded")

    core.create_namespaced_pod(NS, pod("writer", "open('/data/note', 'w').write('hello')"))
    wait_for(lambda: succeeded("writer"), timeout=30)
    core.create_namespaced_pod(NS, pod("reader", "print(open('/data/note').read())"))
    wait_for(lambda: succeeded("reader"), timeout=30)
    assert core.read_namespaced_pod_log("reader", NS).strip() == "hello"
    volume = core.read_persistent_volume(f"pvc-{created.metadata.uid}")
    assert Path(volume.spec.host_path.path, "note").read_text() == "hello"


def sleeper(name: str, claim_name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "local/python",
                    "command": ["python", "-c", "import time; time.sleep(600)"],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


def test_a_claim_in_use_is_kept_until_its_pod_is_gone(
    process_cluster: LocalCluster, core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    created = core.create_namespaced_persistent_volume_claim(NS, claim("busy"))
    wait_for(lambda: bound(core, "busy"))
    core.create_namespaced_pod(NS, sleeper("user", "busy"))
    wait_for(lambda: core.read_namespaced_pod("user", NS).status.phase == "Running", timeout=30)
    core.delete_namespaced_persistent_volume_claim("busy", NS)
    terminating = core.read_namespaced_persistent_volume_claim("busy", NS)
    assert terminating.metadata.deletion_timestamp is not None
    assert kubectl("get", "pvc", "busy").stdout.splitlines()[1].split()[1] == "Terminating"
    directory = process_cluster.kubelet.claim_directory(NS, "busy")
    assert directory.is_dir()
    volume_name = f"pvc-{created.metadata.uid}"
    assert core.read_persistent_volume(volume_name).status.phase == "Bound"
    core.delete_namespaced_pod("user", NS)
    wait_for(lambda: gone(core.read_namespaced_persistent_volume_claim, "busy", NS))
    wait_for(lambda: gone(core.read_persistent_volume, volume_name))
    assert not directory.exists()


def test_a_bound_volume_is_kept_until_its_claim_is_gone(
    core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    created = core.create_namespaced_persistent_volume_claim(NS, claim("held"))
    wait_for(lambda: bound(core, "held"))
    volume_name = f"pvc-{created.metadata.uid}"
    core.delete_persistent_volume(volume_name)
    volume = core.read_persistent_volume(volume_name)
    assert volume.metadata.deletion_timestamp is not None
    assert volume.status.phase == "Bound"
    assert kubectl("get", "pv", volume_name).stdout.splitlines()[1].split()[4] == "Terminating"
    core.delete_namespaced_persistent_volume_claim("held", NS)
    wait_for(lambda: gone(core.read_persistent_volume, volume_name))
