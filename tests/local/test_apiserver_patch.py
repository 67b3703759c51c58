"""Writes through PUT and the four patch types, including server-side apply ownership."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import yaml

pytestmark = pytest.mark.cluster

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
SERVICES = "/api/v1/namespaces/default/services"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}
# What kube-apiserver's defaulting adds to every container that does not say otherwise.
CONTAINER_DEFAULTS = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "resources": {},
}


def _deployment() -> dict[str, Any]:
    container = {
        "name": "app",
        "image": "nginx",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "ports": [{"containerPort": 80}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    return {
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [container, {"name": "sidecar", "image": "envoy"}],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


def _patch(apiserver: Any, url: str, body: Any, headers: dict[str, str]) -> requests.Response:
    return requests.patch(apiserver.url + url, data=json.dumps(body), headers=headers)


def test_merge_patch_null_deletes_keys(apiserver: Any) -> None:
    body = {"metadata": {"name": "a"}, "data": {"keep": "1", "drop": "2"}}
    requests.post(apiserver.url + CONFIGMAPS, json=body)
    patch = {"data": {"drop": None, "new": "3"}}
    patched = _patch(apiserver, CONFIGMAPS + "/a", patch, MERGE).json()
    assert patched["data"] == {"keep": "1", "new": "3"}


def test_merge_patch_with_stale_resource_version_conflicts(apiserver: Any) -> None:
    requests.post(apiserver.url + CONFIGMAPS, json={"metadata": {"name": "a"}})
    patch = {"metadata": {"resourceVersion": "1"}, "data": {"k": "v"}}
    response = _patch(apiserver, CONFIGMAPS + "/a", patch, MERGE)
    assert response.status_code == 409
    assert response.json()["reason"] == "Conflict"


def test_json_patch_operations(apiserver: Any) -> None:
    requests.post(apiserver.url + CONFIGMAPS, json={"metadata": {"name": "a"}, "data": {"x": "1"}})
    operations = [
        {"op": "test", "path": "/data/x", "value": "1"},
        {"op": "add", "path": "/data/y", "value": "2"},
        {"op": "replace", "path": "/data/x", "value": "3"},
        {"op": "copy", "from": "/data/y", "path": "/data/z"},
        {"op": "move", "from": "/data/z", "path": "/data/w"},
        {"op": "remove", "path": "/data/y"},
        {"op": "add", "path": "/metadata/labels", "value": {"a/b": "c"}},
    ]
    patched = _patch(apiserver, CONFIGMAPS + "/a", operations, JSON_PATCH).json()
    assert patched["data"] == {"x": "3", "w": "2"}
    assert patched["metadata"]["labels"] == {"a/b": "c"}


def test_json_patch_failed_test_is_422(apiserver: Any) -> None:
    requests.post(apiserver.url + CONFIGMAPS, json={"metadata": {"name": "a"}, "data": {"x": "1"}})
    operations = [{"op": "test", "path": "/data/x", "value": "2"}]
    response = _patch(apiserver, CONFIGMAPS + "/a", operations, JSON_PATCH)
    assert response.status_code == 422
    assert response.json()["reason"] == "Invalid"


def test_strategic_merge_patch_merges_lists_by_key(apiserver: Any) -> None:
    requests.post(apiserver.url + DEPLOYMENTS, json=_deployment())
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:2",
                            "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                            "ports": [{"containerPort": 443}],
                            "volumeMounts": [{"mountPath": "/data", "$patch": "delete"}],
                        },
                        {"name": "sidecar", "$patch": "delete"},
                    ],
                    "volumes": [{"name": "cache", "emptyDir": {}}],
                }
            }
        }
    }
    spec = _patch(apiserver, DEPLOYMENTS + "/web", patch, STRATEGIC).json()["spec"]
    pod = spec["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["app"]
    app = pod["containers"][0]
    assert app["image"] == "nginx:2"
    assert app["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
    ]
    assert app["ports"] == [
        {"containerPort": 80, "protocol": "TCP"},
        {"containerPort": 443, "protocol": "TCP"},
    ]
    # Defaulted when the image had no tag, and kept when a patch gives it one.
    assert app["imagePullPolicy"] == "Always"
    assert app["volumeMounts"] == []
    assert [v["name"] for v in pod["volumes"]] == ["data", "cache"]


def test_strategic_merge_patch_replace_directive(apiserver: Any) -> None:
    requests.post(apiserver.url + DEPLOYMENTS, json=_deployment())
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}
            }
        }
    }
    spec = _patch(apiserver, DEPLOYMENTS + "/web", patch, STRATEGIC).json()["spec"]
    assert spec["template"]["spec"]["containers"] == [
        {"name": "only", "image": "x", "imagePullPolicy": "Always", **CONTAINER_DEFAULTS}
    ]


def test_strategic_merge_patch_merges_service_ports_by_port(apiserver: Any) -> None:
    service = {
        "metadata": {"name": "svc"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
    }
    requests.post(apiserver.url + SERVICES, json=service)
    patch = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"name": "https", "port": 443}]}}
    ports = _patch(apiserver, SERVICES + "/svc", patch, STRATEGIC).json()["spec"]["ports"]
    assert [(p["port"], p["targetPort"]) for p in ports] == [(80, 8080), (443, 443)]


def test_strategic_merge_patch_merges_conditions_by_type(apiserver: Any) -> None:
    requests.post(apiserver.url + DEPLOYMENTS, json=_deployment())
    conditions = [{"type": "Available", "status": "False"}]
    _patch(apiserver, DEPLOYMENTS + "/web/status", {"status": {"conditions": conditions}}, MERGE)
    patch = {
        "status": {
            "conditions": [
                {"type": "Progressing", "status": "True"},
                {"type": "Available", "status": "True"},
            ]
        }
    }
    response = _patch(apiserver, DEPLOYMENTS + "/web/status", patch, STRATEGIC)
    assert response.json()["status"]["conditions"] == [
        {"type": "Available", "status": "True"},
        {"type": "Progressing", "status": "True"},
    ]


def test_strategic_merge_patch_on_custom_resource_is_415(
    apiserver: Any, widget_crd: dict[str, Any]
) -> None:
    url = "/apis/example.com/v1/namespaces/default/widgets"
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    widget["spec"] = {"size": 1}
    requests.post(apiserver.url + url, json=widget)
    response = _patch(apiserver, url + "/w", {"spec": {"size": 2}}, STRATEGIC)
    assert response.status_code == 415
    assert response.json()["reason"] == "UnsupportedMediaType"


def _apply(
    apiserver: Any, url: str, body: dict[str, Any], manager: str, force: bool = False
) -> requests.Response:
    query = f"?fieldManager={manager}" + ("&force=true" if force else "")
    return requests.patch(apiserver.url + url + query, data=yaml.safe_dump(body), headers=APPLY)


def _applied_configmap(**data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": data}


def test_apply_creates_then_merges(apiserver: Any) -> None:
    created = _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(x="1"), "alpha")
    assert created.status_code == 201
    _patch(apiserver, CONFIGMAPS + "/a", {"data": {"other": "kept"}}, MERGE)
    updated = _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(x="2"), "alpha")
    assert updated.status_code == 200
    assert updated.json()["data"] == {"x": "2", "other": "kept"}


def test_apply_drops_fields_the_manager_no_longer_applies(apiserver: Any) -> None:
    _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(x="1", y="2"), "alpha")
    _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(z="9"), "beta")
    shrunk = _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(x="1"), "alpha")
    assert shrunk.json()["data"] == {"x": "1", "z": "9"}


def test_apply_conflict_with_another_manager_is_409(apiserver: Any) -> None:
    _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(x="1"), "alpha")
    response = _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(x="2"), "beta")
    assert response.status_code == 409
    body = response.json()
    assert body["reason"] == "Conflict"
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "alpha": .data.x'
    assert body["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "alpha"',
            "field": ".data.x",
        }
    ]
    forced = _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(x="2"), "beta", force=True)
    assert forced.json()["data"] == {"x": "2"}
    dropped = _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(), "alpha")
    assert dropped.json()["data"] == {"x": "2"}


def test_apply_conflict_names_an_updating_manager(apiserver: Any) -> None:
    _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(x="1"), "alpha")
    _patch(apiserver, CONFIGMAPS + "/a?fieldManager=editor", {"data": {"y": "1"}}, MERGE)
    response = _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(x="1", y="2"), "alpha")
    message = response.json()["message"]
    assert message.startswith('Apply failed with 1 conflict: conflict with "editor" using v1 at ')
    assert message.endswith("Z: .data.y")


def test_apply_with_same_value_shares_ownership(apiserver: Any) -> None:
    _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(x="1"), "alpha")
    shared = _apply(apiserver, CONFIGMAPS + "/a", _applied_configmap(x="1"), "beta")
    assert shared.status_code == 200


def test_apply_merges_containers_by_name(apiserver: Any) -> None:
    base = _deployment()
    base.update(apiVersion="apps/v1", kind="Deployment")
    _apply(apiserver, DEPLOYMENTS + "/web", base, "operator")
    base["spec"]["template"]["spec"]["containers"] = [{"name": "app", "image": "nginx:2"}]
    spec = _apply(apiserver, DEPLOYMENTS + "/web", base, "operator").json()["spec"]
    # The defaults (imagePullPolicy from the first image, without a tag) belong to no manager.
    assert spec["template"]["spec"]["containers"] == [
        {"name": "app", "image": "nginx:2", "imagePullPolicy": "Always", **CONTAINER_DEFAULTS}
    ]


def test_apply_requires_a_field_manager(apiserver: Any) -> None:
    body = yaml.safe_dump(_applied_configmap(x="1"))
    response = requests.patch(apiserver.url + CONFIGMAPS + "/a", data=body, headers=APPLY)
    assert response.status_code == 400


def test_put_replaces_the_whole_object(apiserver: Any) -> None:
    created = requests.post(
        apiserver.url + CONFIGMAPS, json={"metadata": {"name": "a"}, "data": {"x": "1"}}
    ).json()
    created["data"] = {"y": "2"}
    replaced = requests.put(apiserver.url + CONFIGMAPS + "/a", json=created)
    assert replaced.status_code == 200
    assert replaced.json()["data"] == {"y": "2"}
    mismatched = requests.put(apiserver.url + CONFIGMAPS + "/b", json=created)
    assert mismatched.status_code in (400, 404)


def test_dry_run_patch_changes_nothing(apiserver: Any) -> None:
    requests.post(apiserver.url + CONFIGMAPS, json={"metadata": {"name": "a"}, "data": {"x": "1"}})
    url = CONFIGMAPS + "/a?dryRun=All"
    preview = _patch(apiserver, url, {"data": {"x": "2"}}, MERGE).json()
    assert preview["data"] == {"x": "2"}
    assert requests.get(apiserver.url + CONFIGMAPS + "/a").json()["data"] == {"x": "1"}
