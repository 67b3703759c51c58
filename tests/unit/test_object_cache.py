"""The operator's object cache: newest version wins, echoes are no news, groups follow."""

from __future__ import annotations

from typing import Any

from gyre_operator.controllers.cache import ObjectCache
from gyre_operator.controllers.context import model_of


def version(name: str, model: str, resource_version: int, namespace: str = "ns") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": str(resource_version),
        },
        "spec": {"model": model, "version": 1},
    }


def test_newer_versions_replace_older_and_echoes_are_no_news() -> None:
    cache = ObjectCache()
    assert cache.put(version("a", "iris", 5)) is True
    assert cache.put(version("a", "iris", 5)) is False  # the echo of a write we hold
    assert cache.put(version("a", "iris", 4)) is False  # an older event
    assert cache.get(("ns", "a"))["metadata"]["resourceVersion"] == "5"
    assert cache.put(version("a", "iris", 6)) is True


def test_groups_follow_puts_and_forgets() -> None:
    cache = ObjectCache(model_of)
    cache.put(version("a", "iris", 1))
    cache.put(version("b", "iris", 2))
    cache.put(version("c", "rose", 3))
    cache.put(version("d", "iris", 4, namespace="other"))
    assert sorted(v["metadata"]["name"] for v in cache.group(("ns", "iris"))) == ["a", "b"]
    cache.put(version("b", "rose", 5))  # moved to another group
    assert [v["metadata"]["name"] for v in cache.group(("ns", "iris"))] == ["a"]
    assert sorted(v["metadata"]["name"] for v in cache.group(("ns", "rose"))) == ["b", "c"]
    cache.forget(version("a", "iris", 6))
    assert cache.group(("ns", "iris")) == []
    assert cache.get(("ns", "a")) is None
