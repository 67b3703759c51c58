"""The store's namespace and label indexes: lists answered from them match a full scan."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre_local.store.index import SecondaryIndex
from gyre_local.store.patching import MERGE_PATCH
from gyre_local.store.selectors import labels_match, parse_label_selector
from gyre_local.store.store import ApiError, Store

NAMESPACES = ("default", "other")
LABEL_KEYS = ("a", "b", "app.kubernetes.io/name")
LABEL_VALUES = ("", "1", "2", "x")


def _store() -> Store:
    store = Store()
    store.create("", "namespaces", None, {"metadata": {"name": "other"}})
    return store


def _names(store: Store, namespace: str | None = None, selector: str | None = None) -> list[str]:
    items, _ = store.list("", "configmaps", namespace, label_selector=selector)
    return [f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in items]


def _configmap(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}}


def test_an_update_moves_an_object_between_label_values() -> None:
    store = _store()
    store.create("", "configmaps", "default", _configmap("cm", {"a": "1"}))
    store.create("", "configmaps", "default", _configmap("keep", {"a": "1"}))
    assert _names(store, "default", "a=1") == ["default/cm", "default/keep"]

    store.patch(
        "", "configmaps", "default", "cm", {"metadata": {"labels": {"a": "2"}}}, MERGE_PATCH
    )
    assert _names(store, "default", "a=1") == ["default/keep"]
    assert _names(store, "default", "a=2") == ["default/cm"]
    assert _names(store, None, "a in (1,2)") == ["default/cm", "default/keep"]

    current = store.get("", "configmaps", "default", "cm")
    current["metadata"]["labels"] = {"b": "x"}
    store.replace("", "configmaps", "default", "cm", current)
    assert _names(store, "default", "a=2") == []
    assert _names(store, "default", "b=x") == ["default/cm"]
    assert _names(store, "default", "!a") == ["default/cm"]


def test_removal_and_recreation_in_another_namespace() -> None:
    store = _store()
    store.create("", "configmaps", "default", _configmap("cm", {"a": "1"}))
    store.create("", "configmaps", "other", _configmap("other-cm", {"a": "1"}))
    assert _names(store, "default") == ["default/cm"]
    assert _names(store, "other", "a=1") == ["other/other-cm"]

    store.delete("", "configmaps", "default", "cm")
    assert _names(store, "default") == []
    assert _names(store, None, "a=1") == ["other/other-cm"]

    store.create("", "configmaps", "other", _configmap("cm", {"a": "1"}))
    assert _names(store, "default", "a=1") == []
    assert _names(store, "other", "a=1") == ["other/cm", "other/other-cm"]
    assert _names(store, "missing") == []


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("a=1", ["default/one"]),
        ("a==1", ["default/one"]),
        ("a!=1", ["default/none", "default/two"]),
        ("a in (1,2)", ["default/one", "default/two"]),
        ("a in ()", []),
        ("a notin (1)", ["default/none", "default/two"]),
        ("a", ["default/one", "default/two"]),
        ("!a", ["default/none"]),
        ("a>1", ["default/two"]),
        ("a<2", ["default/one"]),
        ("a in (1,2),b=x", ["default/two"]),
        ("b=x,a!=2", []),
        ("missing=1", []),
    ],
)
def test_set_based_selectors(selector: str, expected: list[str]) -> None:
    store = _store()
    store.create("", "configmaps", "default", _configmap("one", {"a": "1"}))
    store.create("", "configmaps", "default", _configmap("two", {"a": "2", "b": "x"}))
    store.create("", "configmaps", "default", _configmap("none"))
    store.create("", "configmaps", "other", _configmap("elsewhere", {"a": "1", "b": "x"}))
    assert _names(store, "default", selector) == expected


def test_cluster_scoped_lists_ignore_the_namespace() -> None:
    store = _store()
    store.patch(
        "", "namespaces", None, "other", {"metadata": {"labels": {"team": "x"}}}, MERGE_PATCH
    )
    items, _ = store.list("", "namespaces", "default", label_selector="team=x")
    assert [i["metadata"]["name"] for i in items] == ["other"]


def test_pages_of_an_indexed_selector() -> None:
    store = _store()
    for index in range(7):
        labels = {"a": "1"} if index % 2 == 0 else {"a": "2"}
        store.create("", "configmaps", "default", _configmap(f"cm-{index}", labels))
    first = store.list_page("", "configmaps", "default", label_selector="a=1", limit=2)
    assert [i["metadata"]["name"] for i in first.items] == ["cm-0", "cm-2"]
    assert first.remaining == 2
    assert first.continue_token is not None
    second = store.list_page(
        "",
        "configmaps",
        "default",
        label_selector="a=1",
        limit=2,
        continue_token=first.continue_token,
    )
    assert [i["metadata"]["name"] for i in second.items] == ["cm-4", "cm-6"]
    assert second.continue_token is None
    assert second.resource_version == first.resource_version


def test_a_recreated_custom_resource_type_starts_with_an_empty_index() -> None:
    store = _store()
    crd: dict[str, Any] = {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    widget: dict[str, Any] = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "1"}},
    }
    store.create("apiextensions.k8s.io", "customresourcedefinitions", None, crd)
    store.create("example.com", "widgets", "default", widget)
    store.delete("apiextensions.k8s.io", "customresourcedefinitions", None, crd["metadata"]["name"])
    with pytest.raises(ApiError):
        store.list("example.com", "widgets", "default", label_selector="a=1")
    store.create("apiextensions.k8s.io", "customresourcedefinitions", None, crd)
    assert store.list("example.com", "widgets", "default", label_selector="a=1")[0] == []
    store.create("example.com", "widgets", "default", {**widget, "metadata": {"name": "v"}})
    assert store.list("example.com", "widgets", "default")[0][0]["metadata"]["name"] == "v"


def test_a_watch_from_the_current_state_sends_only_matches_in_order() -> None:
    store = _store()
    for name, labels in [("c", {"a": "1"}), ("a", {"a": "1"}), ("b", {"a": "2"})]:
        store.create("", "configmaps", "default", _configmap(name, labels))
    store.create("", "configmaps", "other", _configmap("d", {"a": "1"}))

    async def initial_events() -> list[tuple[str, str]]:
        watch = store.watch("", "configmaps", "default", label_selector="a=1")
        events = [await anext(watch), await anext(watch)]
        watch.close()
        return [(kind, obj["metadata"]["name"]) for kind, obj in events]

    assert asyncio.run(initial_events()) == [("ADDED", "a"), ("ADDED", "c")]


def test_the_secondary_index_forgets_everything_removed() -> None:
    index = SecondaryIndex()
    index.put(("ns", "x"), {"a": "1", "b": "2"})
    index.put(("ns", "x"), {"a": "2", "c": "3"})
    index.put(("ns", "y"), {"a": "2", "bad": 1, 2: "bad"})
    selector = parse_label_selector("a=2")
    assert sorted(index.candidates("ns", selector) or ()) == [("ns", "x"), ("ns", "y")]
    assert index.candidates("ns", parse_label_selector("b=2")) == frozenset()
    assert index.candidates(None, parse_label_selector("a!=2")) is None
    index.remove(("ns", "x"))
    index.remove(("ns", "y"))
    index.remove(("ns", "never"))
    assert (index._by_namespace, index._by_label, index._labels) == ({}, {}, {})


_labels = st.dictionaries(st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES), max_size=3)
_operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "delete"]),
        st.sampled_from(NAMESPACES),
        st.sampled_from(["p", "q", "r", "s", "t"]),
        _labels,
    ),
    max_size=30,
)


@st.composite
def _selectors(draw: st.DrawFn) -> str:
    terms = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(LABEL_KEYS))
        values = draw(st.lists(st.sampled_from(LABEL_VALUES), max_size=3))
        value = values[0] if values else "1"
        terms.append(
            draw(
                st.sampled_from(
                    [
                        f"{key}={value}",
                        f"{key}=={value}",
                        f"{key}!={value}",
                        f"{key} in ({','.join(values)})",
                        f"{key} notin ({','.join(values)})",
                        key,
                        f"!{key}",
                        f"{key}>1",
                        f"{key}<2",
                    ]
                )
            )
        )
    return ",".join(terms)


@settings(max_examples=200, deadline=None)
@given(
    operations=_operations,
    selector=_selectors(),
    namespace=st.sampled_from([None, "default", "other", "missing"]),
    limit=st.integers(1, 4),
)
def test_lists_match_a_brute_force_filter(
    operations: list[tuple[str, str, str, dict[str, str]]],
    selector: str,
    namespace: str | None,
    limit: int,
) -> None:
    store = _store()
    model: dict[tuple[str, str], dict[str, str]] = {}
    for operation, ns, name, labels in operations:
        if operation == "delete":
            if (ns, name) in model:
                store.delete("", "configmaps", ns, name)
                del model[(ns, name)]
        elif (ns, name) in model:
            current = store.get("", "configmaps", ns, name)
            current["metadata"]["labels"] = labels
            store.replace("", "configmaps", ns, name, current)
            model[(ns, name)] = labels
        else:
            store.create("", "configmaps", ns, _configmap(name, labels))
            model[(ns, name)] = labels

    requirements = parse_label_selector(selector)
    expected = [
        f"{ns}/{name}"
        for (ns, name), labels in sorted(model.items())
        if namespace in (None, ns) and labels_match(requirements, labels)
    ]
    assert _names(store, namespace, selector) == expected

    pages: list[str] = []
    token = None
    while True:
        page = store.list_page(
            "", "configmaps", namespace, label_selector=selector, limit=limit, continue_token=token
        )
        pages.extend(f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in page.items)
        assert page.remaining == (len(expected) - len(pages) if page.continue_token else None)
        if page.continue_token is None:
            break
        token = page.continue_token
    assert pages == expected
