"""The operator's view of the objects it watches, fed by kopf's watch events and its own writes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Key = tuple[str, str]


def key_of(obj: Mapping[str, Any]) -> Key:
    """The namespace/name key of an object."""
    metadata = obj["metadata"]
    return str(metadata.get("namespace") or ""), str(metadata["name"])


def _revision(obj: Mapping[str, Any]) -> int | None:
    value = str(obj["metadata"].get("resourceVersion", ""))
    return int(value) if value.isdigit() else None


class ObjectCache:
    """The newest known body of each object of one kind."""

    def __init__(self) -> None:
        self._objects: dict[Key, dict[str, Any]] = {}

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
            self._objects[key] = dict(obj)
            return True
        return False

    def forget(self, obj: Mapping[str, Any]) -> None:
        """Drop a deleted object."""
        self._objects.pop(key_of(obj), None)

    def get(self, key: Key) -> dict[str, Any] | None:
        """The object with this key, if known."""
        return self._objects.get(key)

    def values(self) -> Iterator[dict[str, Any]]:
        """Every known object."""
        return iter(list(self._objects.values()))

    def all_keys(self) -> list[Key]:
        """Every known key."""
        return list(self._objects)
