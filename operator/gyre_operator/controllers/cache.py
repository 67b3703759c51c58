"""The operator's view of the objects it watches, fed by kopf's watch events and its own writes."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any

Key = tuple[str, str]


def key_of(obj: Mapping[str, Any]) -> Key:
    """The namespace/name key of an object."""
    metadata = obj["metadata"]
    return str(metadata.get("namespace") or ""), str(metadata["name"])


def _revision(obj: Mapping[str, Any]) -> int | None:
    value = str(obj["metadata"].get("resourceVersion", ""))
    return int(value) if value.isdigit() else None


Grouping = Callable[[Mapping[str, Any]], Hashable]


class ObjectCache:
    """The newest known body of each object of one kind, optionally grouped (by model, say)
    so that a reconcile reads its object's group instead of every object."""

    def __init__(self, grouping: Grouping | None = None) -> None:
        self._objects: dict[Key, dict[str, Any]] = {}
        self._grouping = grouping
        self._groups: dict[Hashable, dict[Key, dict[str, Any]]] = {}

    def put(self, obj: Mapping[str, Any]) -> bool:
        """Remember obj unless it is no newer than what is known; True when it was newer.

        resourceVersions are opaque by contract; every API server in practice uses an
        increasing integer, so an older watch event never overwrites our own newer write,
        and the echo of our own write is no news.
        """
        key = key_of(obj)
        known = self._objects.get(key)
        new, old = _revision(obj), _revision(known) if known is not None else None
        if known is None or new is None or old is None or new > old:
            self._ungroup(key, known)
            self._objects[key] = stored = dict(obj)
            if self._grouping is not None:
                self._groups.setdefault(self._grouping(stored), {})[key] = stored
            return True
        return False

    def forget(self, obj: Mapping[str, Any]) -> None:
        """Drop a deleted object."""
        key = key_of(obj)
        self._ungroup(key, self._objects.pop(key, None))

    def group(self, name: Hashable) -> list[dict[str, Any]]:
        """The known objects of one group."""
        return list(self._groups.get(name, {}).values())

    def _ungroup(self, key: Key, known: dict[str, Any] | None) -> None:
        if known is None or self._grouping is None:
            return
        members = self._groups.get(self._grouping(known), {})
        members.pop(key, None)
        if not members:
            self._groups.pop(self._grouping(known), None)

    def get(self, key: Key) -> dict[str, Any] | None:
        """The object with this key, if known."""
        return self._objects.get(key)

    def values(self) -> Iterator[dict[str, Any]]:
        """Every known object."""
        return iter(list(self._objects.values()))

    def all_keys(self) -> list[Key]:
        """Every known key."""
        return list(self._objects)
