"""The index of stored objects and the primitives every write ends in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from gyre_local.store import patching
from gyre_local.store.builtins import BUILTIN_TYPES, ResourceType, crd_resource_type
from gyre_local.store.crds import CustomResourceSchemas
from gyre_local.store.errors import ApiError, not_found
from gyre_local.store.ownership import Entry
from gyre_local.store.rules import next_state
from gyre_local.store.selectors import LabelSelector
from gyre_local.store.watches import Event, EventHistory

ObjKey = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name
Name = tuple[str, str]  # namespace ("" when cluster-scoped), name: the key within one type
Label = tuple[str, str]  # label key, label value
BUILTIN_KEYS = frozenset((t.group, t.plural) for t in BUILTIN_TYPES)
_NOTHING: frozenset[Name] = frozenset()


def label_pairs(labels: Any) -> tuple[Label, ...]:
    """The (key, value) pairs of a labels map; entries that are not strings are left out, as no
    selector term can ever match them by equality."""
    if not isinstance(labels, Mapping):
        return ()
    return tuple(
        (key, value)
        for key, value in labels.items()
        if isinstance(key, str) and isinstance(value, str)
    )


class SecondaryIndex:
    """The keys of one resource type's objects by namespace and by label (key, value).

    It narrows a list to candidates: every object in a namespace whose labels satisfy a
    selector is among the candidates, which the caller still filters with the full selector.
    """

    def __init__(self) -> None:
        self._by_namespace: dict[str, set[Name]] = {}
        self._by_label: dict[Label, set[Name]] = {}
        self._labels: dict[Name, tuple[Label, ...]] = {}  # what each object is indexed under

    def put(self, key: Name, labels: Any) -> None:
        """Index an object's current labels (replacing what it was indexed under before)."""
        pairs = label_pairs(labels)
        previous = self._labels.get(key)
        if previous is None:
            self._by_namespace.setdefault(key[0], set()).add(key)
            previous = ()
        elif previous == pairs:
            return
        old, new = set(previous), set(pairs)
        for pair in old - new:
            _discard(self._by_label, pair, key)
        for pair in new - old:
            self._by_label.setdefault(pair, set()).add(key)
        self._labels[key] = pairs

    def remove(self, key: Name) -> None:
        """Forget an object."""
        previous = self._labels.pop(key, None)
        if previous is None:
            return
        _discard(self._by_namespace, key[0], key)
        for pair in previous:
            _discard(self._by_label, pair, key)

    def candidates(self, namespace: str | None, selector: LabelSelector) -> Collection[Name] | None:
        """The smallest indexed set holding every object in `namespace` (all when None) that
        matches `selector`, or None when no term narrows the search (every object is one).

        Equality and `in` terms are answered from the label index; `notin`, `!=`, existence
        and comparison terms narrow nothing and are left to the caller's filter.
        """
        best: Collection[Name] | None = None
        if namespace is not None:
            best = self._by_namespace.get(namespace, _NOTHING)
        for requirement in selector:
            if best is not None and not best:
                break
            if requirement.operator != "in":
                continue
            sets = [self._by_label.get((requirement.key, v), _NOTHING) for v in requirement.values]
            if best is not None and sum(len(s) for s in sets) >= len(best):
                continue
            best = sets[0] if len(sets) == 1 else set().union(*sets)
        return best


def _discard(index: dict[Any, set[Name]], value: Any, key: Name) -> None:
    """Remove a key from the set indexed under value, and the set once it is empty."""
    keys = index.get(value)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[value]


class ObjectIndex:
    """Stored objects by type and name, by uid, by owner uid and (per type) by namespace and
    label, with the served resource types, the global resourceVersion, the history of changes
    and the custom resource schemas.

    Every change goes through `add`, `commit` or `drop`, which bump the resourceVersion and
    record the change for watches.
    """

    def __init__(self, *, history_size: int) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {}
        self._objects: dict[tuple[str, str], dict[tuple[str, str], Entry]] = {}
        self._secondary: dict[tuple[str, str], SecondaryIndex] = {}
        self._by_uid: dict[str, ObjKey] = {}
        self._dependents: dict[str, set[ObjKey]] = {}
        self._namespace_counts: Counter[str] = Counter()
        self._rv = 0
        self.history = EventHistory(history_size)
        self.schemas = CustomResourceSchemas()
        for rtype in BUILTIN_TYPES:
            self._register(rtype)

    # ---- resource types ----

    def served(self, group: str, plural: str) -> ResourceType | None:
        """The resource type served under a group and plural name, if any."""
        return self._types.get((group, plural))

    def resource(self, group: str, plural: str) -> ResourceType:
        """The resource type served under a group and plural name; raises NotFound."""
        rtype = self.served(group, plural)
        if rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rtype

    def resource_types(self) -> list[ResourceType]:
        """Every resource type currently served (built-ins and established custom resources)."""
        return list(self._types.values())

    def is_builtin(self, rtype: ResourceType) -> bool:
        """Whether a type is compiled in rather than defined by a CRD."""
        return (rtype.group, rtype.plural) in BUILTIN_KEYS

    def strategy(self, rtype: ResourceType) -> patching.Strategy:
        """How patches and field ownership treat the lists of a type."""
        return patching.strategy_for(rtype.kind, builtin=self.is_builtin(rtype))

    def serve_crd(self, crd: dict[str, Any]) -> None:
        """Serve the custom resource a CRD defines, with its schemas."""
        rtype = crd_resource_type(crd)
        if rtype is None or self.is_builtin(rtype):
            return
        self._register(rtype)
        self.schemas.register(rtype, crd)

    def stop_serving_crd(self, crd: dict[str, Any]) -> None:
        """Stop serving a CRD's custom resource: its objects, watches and schemas go."""
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        if key in BUILTIN_KEYS:
            return
        self._types.pop(key, None)
        self._objects.pop(key, None)
        self._secondary.pop(key, None)
        self.history.close_watches(*key)
        self.schemas.unregister(*key)

    def _register(self, rtype: ResourceType) -> None:
        key = (rtype.group, rtype.plural)
        self._types[key] = rtype
        self._objects.setdefault(key, {})
        self._secondary.setdefault(key, SecondaryIndex())

    # ---- reads ----

    @property
    def revision(self) -> int:
        """The current global resourceVersion, as a number."""
        return self._rv

    @property
    def resource_version(self) -> str:
        """The current global resourceVersion."""
        return str(self._rv)

    @property
    def retained_events(self) -> int:
        """How many events the bounded watch history currently holds."""
        return len(self.history)

    def objects(self, group: str, plural: str) -> Mapping[tuple[str, str], Entry]:
        """The stored entries of a resource type by (namespace, name); a live, read-only view."""
        return self._objects.get((group, plural), {})

    def keys(
        self, group: str, plural: str, namespace: str | None, selector: LabelSelector
    ) -> list[Name]:
        """The sorted keys of the stored objects of a type that may be in `namespace` (any when
        None) and match `selector`: a superset of the matches, drawn from the namespace and
        label indexes (every key when neither narrows it). Filter them with the full selector.
        """
        secondary = self._secondary.get((group, plural))
        candidates = secondary.candidates(namespace, selector) if secondary else None
        return sorted(self.objects(group, plural) if candidates is None else candidates)

    def entry(self, rtype: ResourceType, namespace: str | None, name: str) -> Entry:
        """The stored entry of an object; raises NotFound."""
        scope = (namespace or "") if rtype.namespaced else ""
        entry = self._objects[(rtype.group, rtype.plural)].get((scope, name))
        if entry is None:
            raise not_found(rtype, name)
        return entry

    def lookup(self, key: ObjKey) -> tuple[ResourceType, Entry] | None:
        """The type and entry of an object still stored under a key."""
        rtype = self._types.get((key[0], key[1]))
        entry = self._objects.get((key[0], key[1]), {}).get((key[2], key[3]))
        return (rtype, entry) if rtype is not None and entry is not None else None

    @staticmethod
    def key_of(rtype: ResourceType, entry: Entry) -> ObjKey:
        """The key of a stored object."""
        meta = entry.obj["metadata"]
        return (rtype.group, rtype.plural, meta.get("namespace", ""), meta["name"])

    def uid_key(self, uid: str) -> ObjKey | None:
        """The key of the stored object with a uid, if any."""
        return self._by_uid.get(uid)

    def has_dependents(self, uid: str) -> bool:
        """Whether any stored object names an owner uid."""
        return bool(self._dependents.get(uid))

    def dependents(self, uid: str) -> Iterator[tuple[ResourceType, Entry]]:
        """The stored objects naming an owner uid, in key order."""
        for key in sorted(self._dependents.get(uid, set())):
            found = self.lookup(key)
            if found is not None:
                yield found

    def forget_dependents(self, uid: str) -> None:
        """Forget which objects named an owner uid that is gone."""
        self._dependents.pop(uid, None)

    def namespace_count(self, namespace: str) -> int:
        """How many objects a namespace holds."""
        return self._namespace_counts[namespace]

    # ---- writes ----

    def add(self, rtype: ResourceType, entry: Entry) -> None:
        """Store a new object under the next resourceVersion."""
        self._rv += 1
        entry.obj["metadata"]["resourceVersion"] = str(self._rv)
        self._put(rtype, entry, None)
        self._emit(rtype, "ADDED", entry.obj, None)

    def commit(self, rtype: ResourceType, entry: Entry, new: dict[str, Any]) -> None:
        """Store a new state of an existing object under the next resourceVersion."""
        old = entry.obj
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        entry.obj = new
        self._put(rtype, entry, old)
        self._emit(rtype, "MODIFIED", new, old)

    def drop(self, rtype: ResourceType, entry: Entry) -> dict[str, Any]:
        """Remove an object under the next resourceVersion; returns its last state."""
        obj = next_state(entry.obj)
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        del self._objects[(rtype.group, rtype.plural)][(namespace, name)]
        self._secondary[(rtype.group, rtype.plural)].remove((namespace, name))
        self._namespace_counts[namespace] -= 1
        key: ObjKey = (rtype.group, rtype.plural, namespace, name)
        self._by_uid.pop(meta["uid"], None)
        for ref in meta.get("ownerReferences") or []:
            self._dependents.get(ref.get("uid", ""), set()).discard(key)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        entry.obj = obj
        self._emit(rtype, "DELETED", obj, None)
        return obj

    def _put(self, rtype: ResourceType, entry: Entry, old: dict[str, Any] | None) -> None:
        """Index an entry (replacing the state `old`, if any) by key, uid, owners and labels."""
        meta = entry.obj["metadata"]
        key: ObjKey = (rtype.group, rtype.plural, meta.get("namespace", ""), meta["name"])
        if old is None:
            self._namespace_counts[key[2]] += 1
        name: Name = (key[2], key[3])
        self._objects[(rtype.group, rtype.plural)][name] = entry
        self._secondary[(rtype.group, rtype.plural)].put(name, meta.get("labels"))
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
        self.history.record(Event(self._rv, rtype.group, rtype.plural, event_type, obj, old))
