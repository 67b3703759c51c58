"""CRUD semantics of the local API server: codes, reasons and server-set fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from kubernetes import client

pytestmark = pytest.mark.cluster

CM_URL = "/api/v1/namespaces/default/configmaps"


def _configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_create_returns_201_with_server_set_fields(apiserver: Any) -> None:
    response = requests.post(apiserver.url + CM_URL, json=_configmap("a", k="v"))
    assert response.status_code == 201
    meta = response.json()["metadata"]
    assert meta["namespace"] == "default"
    assert len(meta["uid"]) == 36
    assert meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0


def test_resource_versions_come_from_one_global_counter(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    first = v1.create_namespaced_config_map("default", _configmap("a"))
    second = v1.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    listed = v1.list_namespaced_config_map("default")
    assert int(second.metadata.resource_version) == int(first.metadata.resource_version) + 1
    assert listed.metadata.resource_version == second.metadata.resource_version


def test_generate_name_appends_a_random_suffix(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    created = v1.create_namespaced_config_map("default", {"metadata": {"generateName": "job-"}})
    assert created.metadata.name.startswith("job-")
    assert len(created.metadata.name) == len("job-") + 5


def test_duplicate_create_is_409_already_exists(apiserver: Any) -> None:
    requests.post(apiserver.url + CM_URL, json=_configmap("a"))
    response = requests.post(apiserver.url + CM_URL, json=_configmap("a"))
    assert response.status_code == 409
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "a" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "a", "kind": "configmaps"},
        "code": 409,
    }


def test_get_missing_is_404_not_found(apiserver: Any) -> None:
    response = requests.get(apiserver.url + "/apis/apps/v1/namespaces/default/deployments/x")
    assert response.status_code == 404
    body = response.json()
    assert body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "x" not found'
    assert body["details"] == {"name": "x", "group": "apps", "kind": "deployments"}


def test_create_in_missing_namespace_is_404(apiserver: Any) -> None:
    url = apiserver.url + "/api/v1/namespaces/nowhere/configmaps"
    response = requests.post(url, json=_configmap("a"))
    assert response.status_code == 404
    assert response.json()["message"] == 'namespaces "nowhere" not found'


def test_stale_resource_version_on_update_is_409_conflict(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    created = v1.create_namespaced_config_map("default", _configmap("a", k="1"))
    created.data = {"k": "2"}
    v1.replace_namespaced_config_map("a", "default", created)
    created.data = {"k": "3"}
    with pytest.raises(client.ApiException) as raised:
        v1.replace_namespaced_config_map("a", "default", created)
    assert raised.value.status == 409
    body = json.loads(raised.value.body)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "a": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


def test_invalid_name_is_422_invalid(apiserver: Any) -> None:
    response = requests.post(apiserver.url + CM_URL, json=_configmap("Bad_Name"))
    assert response.status_code == 422
    body = response.json()
    assert body["reason"] == "Invalid"
    assert body["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid')
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["details"]["causes"][0]["reason"] == "FieldValueInvalid"


def test_missing_name_is_422_required(apiserver: Any) -> None:
    response = requests.post(apiserver.url + CM_URL, json={"metadata": {}})
    assert response.status_code == 422
    assert response.json()["message"] == (
        'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'
    )


def test_noop_update_keeps_resource_version(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    created = v1.create_namespaced_config_map("default", _configmap("a", k="1"))
    again = v1.patch_namespaced_config_map("a", "default", {"data": {"k": "1"}})
    assert again.metadata.resource_version == created.metadata.resource_version


def test_generation_bumps_on_spec_change_only(kube_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube_client)
    deployment = {
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]},
            },
        },
    }
    created = apps.create_namespaced_deployment("default", deployment)
    assert created.metadata.generation == 1
    labelled = apps.patch_namespaced_deployment(
        "web", "default", {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled.metadata.generation == 1
    status = apps.patch_namespaced_deployment_status("web", "default", {"status": {"replicas": 1}})
    assert status.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 4}})
    assert scaled.metadata.generation == 2


def test_status_subresource_separates_status_from_spec(kube_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube_client)
    body = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]},
            },
        },
        "status": {"replicas": 9},
    }
    created = apps.create_namespaced_deployment("default", body)
    assert created.status.replicas is None
    main = apps.patch_namespaced_deployment("web", "default", {"status": {"replicas": 5}})
    assert main.status.replicas is None
    status = apps.patch_namespaced_deployment_status(
        "web", "default", {"spec": {"replicas": 7}, "status": {"replicas": 3}}
    )
    assert status.status.replicas == 3
    assert status.spec.replicas == 1


def test_finalizers_hold_deletion_until_emptied(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    body = _configmap("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    v1.create_namespaced_config_map("default", body)
    v1.delete_namespaced_config_map("held", "default")
    pending = v1.read_namespaced_config_map("held", "default")
    assert pending.metadata.deletion_timestamp is not None
    assert pending.metadata.finalizers == ["example.com/hold"]
    with pytest.raises(client.ApiException) as raised:
        v1.patch_namespaced_config_map(
            "held", "default", {"metadata": {"finalizers": ["example.com/hold", "x/y"]}}
        )
    assert raised.value.status == 422
    v1.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(client.ApiException) as gone:
        v1.read_namespaced_config_map("held", "default")
    assert gone.value.status == 404


def test_delete_of_builtin_returns_success_status(apiserver: Any) -> None:
    requests.post(apiserver.url + CM_URL, json=_configmap("a"))
    response = requests.delete(apiserver.url + CM_URL + "/a")
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "Status"
    assert body["status"] == "Success"
    assert body["details"]["name"] == "a"


def test_dry_run_writes_nothing(apiserver: Any) -> None:
    response = requests.post(apiserver.url + CM_URL + "?dryRun=All", json=_configmap("a"))
    assert response.status_code == 201
    assert requests.get(apiserver.url + CM_URL + "/a").status_code == 404


def test_create_in_terminating_namespace_is_403(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespace({"metadata": {"name": "team"}})
    held = _configmap("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    v1.create_namespaced_config_map("team", held)
    v1.delete_namespace("team")
    assert v1.read_namespace("team").status.phase == "Terminating"
    with pytest.raises(client.ApiException) as raised:
        v1.create_namespaced_config_map("team", _configmap("new"))
    assert raised.value.status == 403
    assert json.loads(raised.value.body)["reason"] == "Forbidden"


def test_scale_subresource_reads_and_writes_replicas(apiserver: Any) -> None:
    url = apiserver.url + "/apis/apps/v1/namespaces/default/replicasets"
    replicaset = {
        "metadata": {"name": "rs"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    requests.post(url, json=replicaset)
    scale = requests.get(url + "/rs/scale").json()
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 2
    assert scale["status"]["selector"] == "app=x"
    headers = {"Content-Type": "application/merge-patch+json"}
    patched = requests.patch(url + "/rs/scale", json={"spec": {"replicas": 5}}, headers=headers)
    assert patched.json()["spec"]["replicas"] == 5
    assert requests.get(url + "/rs").json()["spec"]["replicas"] == 5


def test_pod_log_comes_from_the_registered_provider(apiserver: Any) -> None:
    apiserver.call(apiserver.store.set_log_provider, lambda ns, pod, c: f"{ns}/{pod}/{c}\n")
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    requests.post(apiserver.url + "/api/v1/namespaces/default/pods", json=pod)
    response = requests.get(apiserver.url + "/api/v1/namespaces/default/pods/p/log?container=c")
    assert response.status_code == 200
    assert response.text == "default/p/c\n"


def test_service_keeps_its_cluster_ip_across_replace(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    service = {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
    created = v1.create_namespaced_service("default", service)
    assert created.spec.cluster_ip.startswith("10.96.")
    assert created.spec.ports[0].target_port == 80
    replaced = v1.replace_namespaced_service(
        "svc", "default", {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 81}]}}
    )
    assert replaced.spec.cluster_ip == created.spec.cluster_ip


def test_persistent_volume_claims_start_pending(apiserver: Any) -> None:
    """Binding is the PersistentVolume controller's (tests/local/test_storage.py)."""
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    url = apiserver.url + "/api/v1/namespaces/default/persistentvolumeclaims"
    created = requests.post(url, json=claim).json()
    assert created["status"] == {"phase": "Pending"}
    assert created["spec"]["volumeMode"] == "Filesystem"
