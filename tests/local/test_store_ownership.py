"""Field ownership bookkeeping: the changed paths found by descending only where two states
differ equal the definition over every field path of both; json_copy copies like deepcopy;
stored states that share unchanged values never reach a caller uncopied."""

from __future__ import annotations

import asyncio
import copy
import datetime
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gyre_local.jsoncopy import json_copy
from gyre_local.store import patching
from gyre_local.store.patching import MERGE_PATCH, FieldPath, Strategy
from gyre_local.store.store import Store

STRATEGY = Strategy(
    {
        ("items",): "name",
        ("spec", "items"): "name",
        ("spec", "items", "ports"): "port",
        ("metadata", "ownerReferences"): "uid",
    },
    frozenset({("metadata", "finalizers")}),
)
KEYS = ("spec", "items", "ports", "x", "metadata", "kind", "generation")
MERGE_KEYS = ("name", "port", "uid")  # only ever scalars: field paths hold their values
SCALARS = st.sampled_from([None, 0, 1, 1.0, True, False, "", "a", "b"])


# ---- the definition, as it was computed before: every field path of both objects ----


def _reference_walk(value: Any, strategy: Strategy, path: FieldPath) -> Iterator[FieldPath]:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            if path == () and key in ("apiVersion", "kind"):
                continue
            if path == ("metadata",) and key in patching._SERVER_METADATA:
                continue
            yield from _reference_walk(child, strategy, (*path, key))
        return
    merge_key = strategy.merge_keys.get(tuple(p for p in path if isinstance(p, str)))
    if isinstance(value, list) and merge_key is not None:
        for item in value:
            if isinstance(item, dict) and merge_key in item:
                item_path = (*path, (merge_key, item[merge_key]))
                yield item_path
                yield from _reference_walk(item, strategy, item_path)
        return
    if path:
        yield path


def _reference_changes(
    old: Any, new: Any, strategy: Strategy
) -> tuple[set[FieldPath], set[FieldPath]]:
    before = set(_reference_walk(old, strategy, ()))
    after = set(_reference_walk(new, strategy, ()))
    changed = {p for p in before | after if patching.value_at(old, p) != patching.value_at(new, p)}
    return changed, changed & after


# ---- random objects, and new states sharing the unchanged parts of old ones ----


def _map(children: st.SearchStrategy[Any], size: int) -> st.SearchStrategy[dict[str, Any]]:
    """A map, often with merge key fields (values repeat, may be None): a keyed list item."""
    return st.builds(
        lambda fields, keys: {**fields, **keys},
        st.dictionaries(st.sampled_from(KEYS), children, max_size=size),
        st.dictionaries(st.sampled_from(MERGE_KEYS), st.sampled_from(["a", "b", None, 1])),
    )


VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(_map(children, 4), st.lists(children, max_size=4)),
    max_leaves=25,
)
OBJECTS = _map(VALUES, 5)


@st.composite
def _edited(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """A new state of a value: the same object, a fresh value, or a shallow copy with some
    members edited and the others shared."""
    choice = draw(st.integers(0, 3))
    if choice == 0 or depth > 4:
        return value
    if choice == 1:
        return draw(VALUES)
    if isinstance(value, dict):
        result = dict(value)
        for key in draw(st.lists(st.sampled_from(KEYS + MERGE_KEYS), max_size=3)):
            if key in MERGE_KEYS:
                result[key] = draw(SCALARS)
            elif key in result and draw(st.booleans()):
                result[key] = draw(_edited(result[key], depth + 1))
            elif draw(st.booleans()):
                result.pop(key, None)
            else:
                result[key] = draw(VALUES)
        return result
    if isinstance(value, list) and value:
        result_list = list(value)
        index = draw(st.integers(0, len(result_list) - 1))
        result_list[index] = draw(_edited(result_list[index], depth + 1))
        if draw(st.booleans()):
            result_list.append(copy.deepcopy(result_list[0]))  # a repeated key, now and then
        return result_list
    return draw(VALUES)


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_changed_paths_equal_the_definition(data: st.DataObject) -> None:
    old = data.draw(OBJECTS)
    new = data.draw(_edited(old))
    assert patching.changed_paths(old, new, STRATEGY) == _reference_changes(old, new, STRATEGY)
    assert patching.changed_paths(new, old, STRATEGY) == _reference_changes(new, old, STRATEGY)
    assert patching.field_paths(new, STRATEGY) == set(_reference_walk(new, STRATEGY, ()))


@settings(max_examples=200, deadline=None)
@given(OBJECTS, OBJECTS)
def test_changed_paths_of_unrelated_objects_equal_the_definition(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    assert patching.changed_paths(old, new, STRATEGY) == _reference_changes(old, new, STRATEGY)
    atomic = Strategy()
    assert patching.changed_paths(old, new, atomic) == _reference_changes(old, new, atomic)


def test_changed_paths_of_a_status_write() -> None:
    old: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "resourceVersion": "1", "labels": {"a": "1"}},
        "spec": {"items": [{"name": "main", "image": "x", "ports": [{"port": 80}]}]},
        "status": {"phase": "Pending", "conditions": [{"type": "Ready"}]},
    }
    new = {
        **old,
        "metadata": {**old["metadata"], "resourceVersion": "2"},
        "status": {"phase": "Running", "podIP": "127.0.0.1", "conditions": [{"type": "Ready"}]},
    }
    changed, present = patching.changed_paths(old, new, STRATEGY)
    assert changed == {("status", "phase"), ("status", "podIP")}
    assert present == changed


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_json_copy_equals_deepcopy_and_shares_nothing_mutable(value: Any) -> None:
    copied = json_copy(value)
    assert copied == copy.deepcopy(value)
    assert not _shares_containers(value, copied)


def test_json_copy_hands_other_types_to_deepcopy() -> None:
    stamp = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    value: dict[str, Any] = {"when": stamp, "pair": (1, [2]), "ordered": OrderedDict(a=[1])}
    copied = json_copy(value)
    assert copied == value
    assert type(copied["ordered"]) is OrderedDict
    assert copied["pair"][1] is not value["pair"][1]
    assert copied["ordered"]["a"] is not value["ordered"]["a"]


def _shares_containers(a: Any, b: Any) -> bool:
    if isinstance(a, dict | list) and a is b:
        return True
    if isinstance(a, dict):
        return any(_shares_containers(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return any(_shares_containers(x, y) for x, y in zip(a, b, strict=True))
    return False


# ---- stored states share unchanged values, and no caller ever holds one of them ----


def _pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"a": "1"}}, "spec": {"containers": [{}]}}


def test_a_status_write_leaves_the_caller_nothing_of_the_stored_states() -> None:
    store = Store()
    created = store.create("", "pods", "default", _pod("p"))
    [defaulted] = copy.deepcopy(created["spec"]["containers"])
    assert defaulted["terminationMessagePolicy"] == "File" and defaulted["resources"] == {}
    body = store.get("", "pods", "default", "p")
    body["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    written = store.replace("", "pods", "default", "p", body, subresource="status")
    dry = store.patch(
        "",
        "pods",
        "default",
        "p",
        {"status": {"phase": "Failed"}},
        MERGE_PATCH,
        subresource="status",
        dry_run=True,
    )
    for leaked in (body, written, dry, created):
        leaked["spec"]["containers"].append({"name": "x"})
        leaked["metadata"]["labels"]["b"] = "2"
        leaked.get("status", {}).setdefault("conditions", []).append({"type": "X"})
    stored = store.get("", "pods", "default", "p")
    assert stored["spec"]["containers"] == [defaulted]
    assert stored["metadata"]["labels"] == {"a": "1"}
    assert stored["status"]["phase"] == "Running"
    assert stored["status"]["conditions"] == [{"type": "Ready", "status": "True"}]


def test_the_history_keeps_each_state_as_written() -> None:
    store = Store()
    created = store.create("", "pods", "default", _pod("p"))
    for phase in ("Running", "Succeeded"):
        store.patch(
            "",
            "pods",
            "default",
            "p",
            {"status": {"phase": phase}},
            MERGE_PATCH,
            subresource="status",
        )
    store.patch("", "pods", "default", "p", {"metadata": {"labels": {"a": "2"}}}, MERGE_PATCH)

    async def replay() -> list[tuple[str, dict[str, Any]]]:
        watch = store.watch(
            "", "pods", "default", resource_version=created["metadata"]["resourceVersion"]
        )
        events = [await anext(watch) for _ in range(3)]
        watch.close()
        return events

    events = asyncio.run(replay())
    assert [(e[1]["status"]["phase"], e[1]["metadata"]["labels"]) for e in events] == [
        ("Running", {"a": "1"}),
        ("Succeeded", {"a": "1"}),
        ("Succeeded", {"a": "2"}),
    ]
    events[0][1]["metadata"]["labels"]["a"] = "changed"
    assert store.get("", "pods", "default", "p")["metadata"]["labels"] == {"a": "2"}
