"""List and watch: pagination, selectors, event streams, history replay and expiry."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from kubernetes import client, watch

pytestmark = pytest.mark.cluster

CM_URL = "/api/v1/namespaces/default/configmaps"


def _create(apiserver: Any, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    body = {"metadata": {"name": name, "labels": labels or {}}}
    response = requests.post(apiserver.url + CM_URL, json=body)
    assert response.status_code == 201
    created: dict[str, Any] = response.json()
    return created


def _stream(url: str) -> list[dict[str, Any]]:
    with requests.get(url, stream=True, timeout=10) as response:
        assert response.status_code == 200
        return [json.loads(line) for line in response.iter_lines() if line]


def test_limit_and_continue_paginate_in_order(apiserver: Any) -> None:
    for index in range(5):
        _create(apiserver, f"cm-{index}")
    first = requests.get(apiserver.url + CM_URL + "?limit=2").json()
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm-0", "cm-1"]
    assert first["metadata"]["remainingItemCount"] == 3
    token = first["metadata"]["continue"]
    second = requests.get(apiserver.url + CM_URL + f"?limit=2&continue={token}").json()
    assert [i["metadata"]["name"] for i in second["items"]] == ["cm-2", "cm-3"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    last = requests.get(
        apiserver.url + CM_URL + f"?limit=2&continue={second['metadata']['continue']}"
    ).json()
    assert [i["metadata"]["name"] for i in last["items"]] == ["cm-4"]
    assert "continue" not in last["metadata"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a"]),
        ("tier==web", ["a"]),
        ("tier!=web", ["b", "c"]),
        ("tier in (web,db)", ["a", "b"]),
        ("tier notin (web)", ["b", "c"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c"]),
        ("tier,env=prod", ["b"]),
    ],
)
def test_label_selectors(apiserver: Any, selector: str, expected: list[str]) -> None:
    _create(apiserver, "a", {"tier": "web"})
    _create(apiserver, "b", {"tier": "db", "env": "prod"})
    _create(apiserver, "c", {"env": "prod"})
    response = requests.get(apiserver.url + CM_URL, params={"labelSelector": selector})
    assert [i["metadata"]["name"] for i in response.json()["items"]] == expected


def test_malformed_label_selector_is_400(apiserver: Any) -> None:
    response = requests.get(apiserver.url + CM_URL, params={"labelSelector": "a in b"})
    assert response.status_code == 400
    assert response.json()["reason"] == "BadRequest"


def test_field_selectors(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    for name in ("p1", "p2"):
        pod = {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
        v1.create_namespaced_pod("default", pod)
    v1.patch_namespaced_pod_status("p2", "default", {"status": {"phase": "Running"}})
    running = v1.list_pod_for_all_namespaces(field_selector="status.phase=Running")
    assert [p.metadata.name for p in running.items] == ["p2"]
    by_name = v1.list_namespaced_pod("default", field_selector="metadata.name!=p1")
    assert [p.metadata.name for p in by_name.items] == ["p2"]
    with pytest.raises(client.ApiException) as raised:
        v1.list_namespaced_pod("default", field_selector="spec.unknown=x")
    assert raised.value.status == 400


def test_watch_from_resource_version_replays_later_events(kube_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    start = v1.list_namespaced_config_map("default").metadata.resource_version
    v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    v1.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    v1.delete_namespaced_config_map("a", "default")
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            v1.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=1
        )
    ]
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_without_resource_version_starts_with_current_state(apiserver: Any) -> None:
    _create(apiserver, "a")
    _create(apiserver, "b")
    events = _stream(apiserver.url + CM_URL + "?watch=true&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]


def test_watch_streams_live_events_as_json_lines(apiserver: Any) -> None:
    rv = requests.get(apiserver.url + CM_URL).json()["metadata"]["resourceVersion"]
    url = apiserver.url + CM_URL + f"?watch=true&resourceVersion={rv}&timeoutSeconds=2"
    with requests.get(url, stream=True, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        lines = response.iter_lines()
        created = _create(apiserver, "live")
        event = json.loads(next(line for line in lines if line))
    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_watch_label_selector_turns_transitions_into_added_and_deleted(apiserver: Any) -> None:
    rv = requests.get(apiserver.url + CM_URL).json()["metadata"]["resourceVersion"]
    _create(apiserver, "a", {"tier": "cache"})
    headers = {"Content-Type": "application/merge-patch+json"}
    for tier in ("web", "db"):
        body = {"metadata": {"labels": {"tier": tier}}}
        requests.patch(apiserver.url + CM_URL + "/a", json=body, headers=headers)
    events = _stream(
        apiserver.url
        + CM_URL
        + f"?watch=1&resourceVersion={rv}&timeoutSeconds=1&labelSelector=tier%3Dweb"
    )
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


def test_too_old_resource_version_is_410_gone(
    make_apiserver: Callable[..., Any],
) -> None:
    server = make_apiserver(history_size=3)
    for index in range(5):
        _create(server, f"cm-{index}")
    events = _stream(server.url + CM_URL + "?watch=true&resourceVersion=1")
    assert len(events) == 1
    assert events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith("too old resource version: 1 (")


def test_official_client_watch_raises_on_gone(make_apiserver: Callable[..., Any]) -> None:
    server = make_apiserver(history_size=2)
    configuration = client.Configuration()
    configuration.host = server.url
    with client.ApiClient(configuration) as api:
        v1 = client.CoreV1Api(api)
        for index in range(4):
            v1.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{index}"}})
        with pytest.raises(client.ApiException) as raised:
            list(
                watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version="1")
            )
    assert raised.value.status == 410


def test_bookmarks_carry_the_current_resource_version(make_apiserver: Callable[..., Any]) -> None:
    server = make_apiserver(bookmark_interval=0.1)
    created = _create(server, "a")
    rv = created["metadata"]["resourceVersion"]
    url = (
        server.url
        + CM_URL
        + f"?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1"
    )
    events = _stream(url)
    assert events
    assert {e["type"] for e in events} == {"BOOKMARK"}
    assert events[0]["object"]["kind"] == "ConfigMap"
    assert events[0]["object"]["metadata"]["resourceVersion"] == rv


def test_history_is_bounded(make_apiserver: Callable[..., Any]) -> None:
    server = make_apiserver(history_size=10)
    for index in range(50):
        _create(server, f"cm-{index}")
    assert server.call(lambda: server.store.retained_events) == 10


def test_legacy_watch_path_streams_events(apiserver: Any) -> None:
    _create(apiserver, "a")
    events = _stream(apiserver.url + "/api/v1/watch/namespaces/default/configmaps?timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]


def test_custom_resource_watch_with_the_official_client(
    kube_client: client.ApiClient, widget_crd: dict[str, Any]
) -> None:
    custom = client.CustomObjectsApi(kube_client)
    args = ("example.com", "v1", "default", "widgets")
    start = custom.list_namespaced_custom_object(*args)["metadata"]["resourceVersion"]
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    widget["spec"] = {"size": 1}
    custom.create_namespaced_custom_object(*args, widget)
    custom.patch_namespaced_custom_object_status(*args, "w", {"status": {"phase": "Ready"}})
    events = [
        (e["type"], e["object"].get("status"))
        for e in watch.Watch().stream(
            custom.list_namespaced_custom_object, *args, resource_version=start, timeout_seconds=1
        )
    ]
    assert events == [("ADDED", None), ("MODIFIED", {"phase": "Ready"})]
