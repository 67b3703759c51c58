"""The index of stored objects and the primitives every write ends in."""

from __future__ import annotations

from collections import Counter
from typing import Any

from gyre_local.store import patching
from gyre_local.store.builtins import BUILTIN_TYPES, ResourceType, crd_resource_type
from gyre_local.store.crds import CustomResourceSchemas
from gyre_local.store.errors import ApiError, not_found
from gyre_local.store.ownership import Entry
from gyre_local.store.watches import Event, EventHistory

ObjKey = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name
BUILTIN_KEYS = frozenset((t.group, t.plural) for t in BUILTIN_TYPES)


class ObjectIndex:
    """Stored objects by type and name, by uid and by owner uid, with the served resource
    types, the global resourceVersion and the history of changes."""

    def __init__(self, *, history_size: int) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {}
        self._objects: dict[tuple[str, str], dict[tuple[str, str], Entry]] = {}
        self._by_uid: dict[str, ObjKey] = {}
        self._dependents: dict[str, set[ObjKey]] = {}
        self._namespace_counts: Counter[str] = Counter()
        self._rv = 0
        self._history = EventHistory(history_size)
        self._crds = CustomResourceSchemas()
        for rtype in BUILTIN_TYPES:
            self._register(rtype)

    def resource(self, group: str, plural: str) -> ResourceType:
        """The resource type served under a group and plural name."""
        rtype = self._types.get((group, plural))
        if rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rtype

    def resource_types(self) -> list[ResourceType]:
        """Every resource type currently served (built-ins and established custom resources)."""
        return list(self._types.values())

    def is_builtin(self, rtype: ResourceType) -> bool:
        """Whether a type is compiled in rather than defined by a CRD."""
        return (rtype.group, rtype.plural) in BUILTIN_KEYS

    def schema(self, rtype: ResourceType, version: str) -> dict[str, Any] | None:
        """The openAPIV3Schema of a custom resource version, if it has one."""
        return self._crds.schema(rtype, version)

    @property
    def resource_version(self) -> str:
        """The current global resourceVersion."""
        return str(self._rv)

    @property
    def retained_events(self) -> int:
        """How many events the bounded watch history currently holds."""
        return len(self._history)

    def _register(self, rtype: ResourceType) -> None:
        """Serve a resource type."""
        key = (rtype.group, rtype.plural)
        self._types[key] = rtype
        self._objects.setdefault(key, {})

    def _entry(self, rtype: ResourceType, namespace: str | None, name: str) -> Entry:
        """The stored entry of an object; raises NotFound."""
        scope = (namespace or "") if rtype.namespaced else ""
        entry = self._objects[(rtype.group, rtype.plural)].get((scope, name))
        if entry is None:
            raise not_found(rtype, name)
        return entry

    def _lookup(self, key: ObjKey) -> tuple[ResourceType, Entry] | None:
        """The type and entry of an object still stored under a key."""
        rtype = self._types.get((key[0], key[1]))
        entry = self._objects.get((key[0], key[1]), {}).get((key[2], key[3]))
        return (rtype, entry) if rtype is not None and entry is not None else None

    @staticmethod
    def _key(rtype: ResourceType, entry: Entry) -> ObjKey:
        """The key of a stored object."""
        meta = entry.obj["metadata"]
        return (rtype.group, rtype.plural, meta.get("namespace", ""), meta["name"])

    def _strategy(self, rtype: ResourceType) -> patching.Strategy:
        """How patches and field ownership treat the lists of a type."""
        return patching.strategy_for(rtype.kind, builtin=self.is_builtin(rtype))

    def _commit(self, rtype: ResourceType, entry: Entry, new: dict[str, Any]) -> None:
        """Store a new state of an existing object under the next resourceVersion."""
        old = entry.obj
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        entry.obj = new
        self._put(rtype, entry, old)
        self._emit(rtype, "MODIFIED", new, old)

    def _put(self, rtype: ResourceType, entry: Entry, old: dict[str, Any] | None) -> None:
        """Index an entry (replacing the state `old`, if any) by key, uid and owners."""
        meta = entry.obj["metadata"]
        key: ObjKey = (rtype.group, rtype.plural, meta.get("namespace", ""), meta["name"])
        if old is None:
            self._namespace_counts[key[2]] += 1
        self._objects[(rtype.group, rtype.plural)][(key[2], key[3])] = entry
        self._by_uid[meta["uid"]] = key
        for ref in (old or {}).get("metadata", {}).get("ownerReferences") or []:
            self._dependents.get(ref.get("uid", ""), set()).discard(key)
        for ref in meta.get("ownerReferences") or []:
            self._dependents.setdefault(ref.get("uid", ""), set()).add(key)

    def _emit(
        self,
        rtype: ResourceType,
        event_type: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> None:
        """Record a change at the current resourceVersion and tell the watches."""
        self._history.record(Event(self._rv, rtype.group, rtype.plural, event_type, obj, old))

    def _register_crd(self, crd: dict[str, Any]) -> None:
        """Serve the custom resource a CRD defines, with its schemas."""
        rtype = crd_resource_type(crd)
        if rtype is None or self.is_builtin(rtype):
            return
        self._register(rtype)
        self._crds.register(rtype, crd)

    def _unregister_crd(self, crd: dict[str, Any]) -> None:
        """Stop serving a CRD's custom resource: its objects, watches and schemas go."""
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        if key in BUILTIN_KEYS:
            return
        self._types.pop(key, None)
        self._objects.pop(key, None)
        self._history.close_watches(*key)
        self._crds.unregister(*key)
