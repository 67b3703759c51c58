"""Custom resources: schema validation errors, defaults, pruning and the status subresource."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "example.com", "v1", "widgets"


def _widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture
def widgets(kube_client: client.ApiClient, widget_crd: dict[str, Any]) -> client.CustomObjectsApi:
    """CustomObjectsApi for a cluster where the Widget CRD is registered."""
    return client.CustomObjectsApi(kube_client)


def _create(widgets: client.CustomObjectsApi, body: dict[str, Any], **kwargs: Any) -> Any:
    return widgets.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, body, **kwargs
    )


def test_defaults_are_applied_and_unknown_fields_pruned(widgets: client.CustomObjectsApi) -> None:
    created = _create(widgets, _widget("w", size=2, extra="gone"))
    assert created["spec"] == {"size": 2, "color": "red"}
    assert created["metadata"]["generation"] == 1


def test_invalid_custom_resource_is_422_with_causes(widgets: client.CustomObjectsApi) -> None:
    with pytest.raises(client.ApiException) as raised:
        _create(widgets, _widget("w", size=20))
    assert raised.value.status == 422
    body = json.loads(raised.value.body)
    assert body["reason"] == "Invalid"
    assert body["message"] == (
        'Widget.example.com "w" is invalid: '
        "spec.size: Invalid value: 20: spec.size in body should be less than or equal to 10"
    )
    assert body["details"]["name"] == "w"
    assert body["details"]["group"] == GROUP
    assert body["details"]["kind"] == "Widget"
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: 20: spec.size in body should be less than or equal to 10",
            "field": "spec.size",
        }
    ]


def test_several_errors_are_listed_in_brackets(widgets: client.CustomObjectsApi) -> None:
    with pytest.raises(client.ApiException) as raised:
        _create(widgets, _widget("w", color="green"))
    body = json.loads(raised.value.body)
    assert body["message"].startswith('Widget.example.com "w" is invalid: [')
    assert {c["field"] for c in body["details"]["causes"]} == {"spec.size", "spec.color"}


def test_strict_field_validation_rejects_unknown_fields(
    widgets: client.CustomObjectsApi,
) -> None:
    with pytest.raises(client.ApiException) as raised:
        _create(widgets, _widget("w", size=1, extra=1), field_validation="Strict")
    assert raised.value.status == 400
    assert json.loads(raised.value.body)["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: '
        'strict decoding error: unknown field "spec.extra"'
    )


def test_status_subresource_validates_only_status(widgets: client.CustomObjectsApi) -> None:
    _create(widgets, _widget("w", size=1))
    updated = widgets.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "w", {"status": {"phase": "Ready"}}
    )
    assert updated["status"] == {"phase": "Ready"}
    assert updated["metadata"]["generation"] == 1
    with pytest.raises(client.ApiException) as raised:
        widgets.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "w", {"status": {"phase": "Broken"}}
        )
    assert raised.value.status == 422
    assert body_field(raised.value) == "status.phase"


def body_field(error: client.ApiException) -> str:
    """The field of the first cause of an error response."""
    field: str = json.loads(error.body)["details"]["causes"][0]["field"]
    return field


def test_main_resource_writes_ignore_status(widgets: client.CustomObjectsApi) -> None:
    body = _widget("w", size=1)
    body["status"] = {"phase": "Ready"}
    created = _create(widgets, body)
    assert "status" not in created
    patched = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w", {"spec": {"size": 3}, "status": {"phase": "Ready"}}
    )
    assert "status" not in patched
    assert patched["metadata"]["generation"] == 2


def test_custom_resources_list_across_namespaces(
    kube_client: client.ApiClient, widgets: client.CustomObjectsApi
) -> None:
    client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": "other"}})
    _create(widgets, _widget("a", size=1))
    widgets.create_namespaced_custom_object(GROUP, VERSION, "other", PLURAL, _widget("b", size=1))
    listed = widgets.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert listed["kind"] == "WidgetList"
    names = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]]
    assert names == [("default", "a"), ("other", "b")]
