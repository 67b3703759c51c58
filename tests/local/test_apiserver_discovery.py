"""Discovery, version and health endpoints, and live registration of custom kinds."""

from __future__ import annotations

from typing import Any

import pytest
import requests

pytestmark = pytest.mark.cluster

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/livez"])
def test_health_endpoints_answer_ok(apiserver: Any, path: str) -> None:
    response = requests.get(apiserver.url + path)
    assert (response.status_code, response.text) == (200, "ok")


def test_version(apiserver: Any) -> None:
    body = requests.get(apiserver.url + "/version").json()
    assert body["major"] == "1"
    assert body["gitVersion"].startswith("v1.")


def test_core_group_lists_resources_with_subresources(apiserver: Any) -> None:
    body = requests.get(apiserver.url + "/api/v1").json()
    assert body["kind"] == "APIResourceList"
    resources = {r["name"]: r for r in body["resources"]}
    assert resources["pods"]["namespaced"] is True
    assert resources["pods"]["kind"] == "Pod"
    assert resources["pods"]["shortNames"] == ["po"]
    assert resources["pods"]["categories"] == ["all"]
    assert "watch" in resources["pods"]["verbs"]
    assert {"pods/status", "pods/log"} <= set(resources)
    connect_verbs = ["create", "delete", "get", "patch", "update"]
    for kind, plural in (("Pod", "pods"), ("Service", "services")):
        proxy = resources[f"{plural}/proxy"]
        assert (proxy["kind"], proxy["verbs"]) == (f"{kind}ProxyOptions", connect_verbs)
        assert (proxy["namespaced"], proxy["singularName"]) == (True, "")
    assert resources["namespaces"]["namespaced"] is False


def test_api_group_list_and_group(apiserver: Any) -> None:
    groups = requests.get(apiserver.url + "/apis").json()
    assert groups["kind"] == "APIGroupList"
    names = {g["name"] for g in groups["groups"]}
    expected = {
        "apps",
        "batch",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
        "events.k8s.io",
        "gateway.networking.k8s.io",
    }
    assert expected <= names
    apps = requests.get(apiserver.url + "/apis/apps").json()
    assert apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    resources = requests.get(apiserver.url + "/apis/apps/v1").json()["resources"]
    scale = next(r for r in resources if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")


def test_aggregated_discovery_falls_back_to_plain_form(apiserver: Any) -> None:
    with_fallback = requests.get(
        apiserver.url + "/apis", headers={"Accept": f"{AGGREGATED},application/json"}
    )
    assert with_fallback.status_code == 200
    assert with_fallback.json()["kind"] == "APIGroupList"
    only_aggregated = requests.get(apiserver.url + "/apis", headers={"Accept": AGGREGATED})
    assert only_aggregated.status_code == 406


def test_crd_registers_its_kind_live(apiserver: Any, widget_crd: dict[str, Any]) -> None:
    conditions = {c["type"]: c["status"] for c in widget_crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert widget_crd["status"]["acceptedNames"]["kind"] == "Widget"
    body = requests.get(apiserver.url + "/apis/example.com/v1").json()
    widgets = next(r for r in body["resources"] if r["name"] == "widgets")
    assert widgets["kind"] == "Widget"
    assert widgets["shortNames"] == ["wd"]
    assert widgets["singularName"] == "widget"
    assert any(r["name"] == "widgets/status" for r in body["resources"])
    listed = requests.get(apiserver.url + "/apis/example.com/v1/namespaces/default/widgets")
    assert listed.json()["kind"] == "WidgetList"


def test_unknown_resource_is_404(apiserver: Any) -> None:
    response = requests.get(apiserver.url + "/apis/example.com/v1/namespaces/default/widgets")
    assert response.status_code == 404
    assert response.json()["reason"] == "NotFound"


def test_openapi_v3_advertises_field_validation(apiserver: Any) -> None:
    index = requests.get(apiserver.url + "/openapi/v3").json()["paths"]
    assert "apis/apps/v1" in index
    document = requests.get(apiserver.url + index["apis/apps/v1"]["serverRelativeURL"])
    paths = document.json()["paths"]
    patch = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert {p["name"] for p in patch["parameters"]} >= {"fieldValidation", "dryRun"}
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
