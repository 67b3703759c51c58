"""Garbage collection through ownerReferences, and namespace and CRD cascades."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

pytestmark = pytest.mark.cluster


def _owned_configmap(name: str, owner: Any, *, block: bool = False) -> dict[str, Any]:
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "blockOwnerDeletion": block,
    }
    return {"metadata": {"name": name, "ownerReferences": [reference]}}


def _names(v1: client.CoreV1Api, namespace: str = "default") -> list[str]:
    return [c.metadata.name for c in v1.list_namespaced_config_map(namespace).items]


def test_background_deletion_removes_dependents(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    owner = v1.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    v1.create_namespaced_config_map("default", _owned_configmap("child", owner))
    grandchild_owner = v1.read_namespaced_config_map("child", "default")
    v1.create_namespaced_config_map("default", _owned_configmap("grandchild", grandchild_owner))
    v1.delete_namespaced_config_map("owner", "default", propagation_policy="Background")
    assert _names(v1) == []


def test_dependent_with_another_live_owner_survives(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    first = v1.create_namespaced_config_map("default", {"metadata": {"name": "first"}})
    second = v1.create_namespaced_config_map("default", {"metadata": {"name": "second"}})
    child = _owned_configmap("child", first)
    child["metadata"]["ownerReferences"].append(
        _owned_configmap("x", second)["metadata"]["ownerReferences"][0]
    )
    v1.create_namespaced_config_map("default", child)
    v1.delete_namespaced_config_map("first", "default")
    survivor = v1.read_namespaced_config_map("child", "default")
    assert [r.name for r in survivor.metadata.owner_references] == ["second"]


def test_foreground_deletion_waits_for_blocking_dependents(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    owner = v1.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    held = _owned_configmap("held", owner, block=True)
    held["metadata"]["finalizers"] = ["example.com/hold"]
    v1.create_namespaced_config_map("default", held)
    v1.delete_namespaced_config_map("owner", "default", propagation_policy="Foreground")
    waiting = v1.read_namespaced_config_map("owner", "default")
    assert waiting.metadata.deletion_timestamp is not None
    assert waiting.metadata.finalizers == ["foregroundDeletion"]
    assert v1.read_namespaced_config_map("held", "default").metadata.deletion_timestamp
    v1.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    assert _names(v1) == []


def test_orphan_deletion_strips_owner_references(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    owner = v1.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    v1.create_namespaced_config_map("default", _owned_configmap("child", owner))
    v1.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    orphan = v1.read_namespaced_config_map("child", "default")
    assert orphan.metadata.owner_references is None


def test_jobs_orphan_their_pods_without_a_policy(kube_client: client.ApiClient) -> None:
    batch, v1 = client.BatchV1Api(kube_client), client.CoreV1Api(kube_client)
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}
    job = batch.create_namespaced_job(
        "default", {"metadata": {"name": "j"}, "spec": {"template": template}}
    )
    reference = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "j",
        "uid": job.metadata.uid,
        "controller": True,
    }
    pod = {"metadata": {"name": "j-pod", "ownerReferences": [reference]}, **template}
    v1.create_namespaced_pod("default", pod)
    batch.delete_namespaced_job("j", "default")
    assert v1.read_namespaced_pod("j-pod", "default").metadata.owner_references is None


def test_namespace_deletion_cascades(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespace({"metadata": {"name": "team"}})
    v1.create_namespaced_config_map("team", {"metadata": {"name": "a"}})
    v1.create_namespaced_secret("team", {"metadata": {"name": "b"}})
    v1.delete_namespace("team")
    assert _names(v1, "team") == []
    assert v1.list_namespaced_secret("team").items == []
    names = [n.metadata.name for n in v1.list_namespace().items]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]


def test_crd_deletion_removes_its_objects_and_kind(
    kube_client: client.ApiClient, widget_crd: dict[str, Any]
) -> None:
    custom = client.CustomObjectsApi(kube_client)
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    widget["spec"] = {"size": 1}
    custom.create_namespaced_custom_object("example.com", "v1", "default", "widgets", widget)
    client.ApiextensionsV1Api(kube_client).delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(client.ApiException) as raised:
        custom.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert raised.value.status == 404
