"""Deletion: finalizers, ownerReference garbage collection and namespace and CRD cascades."""

from __future__ import annotations

from typing import Any

from gyre_local.clock import now_rfc3339
from gyre_local.store.builtins import CRD_GROUP, CRD_PLURAL, ResourceType
from gyre_local.store.index import BUILTIN_KEYS, ObjectIndex
from gyre_local.store.ownership import Entry, manager_id, record_ownership
from gyre_local.store.rules import next_state

_FOREGROUND = "foregroundDeletion"
_CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"


class GarbageCollector:
    """Deletes objects of an index as Kubernetes does: behind finalizers, cascading to
    dependents (background, foreground or orphaning them), to a namespace's content and to a
    CRD's objects. Collection runs at once, within the write that triggers it."""

    def __init__(self, index: ObjectIndex) -> None:
        self._index = index

    def delete(self, rtype: ResourceType, entry: Entry, policy: str) -> dict[str, Any]:
        """Delete an object by a propagation policy: at once, or marked terminating while finalizers
        remain; returns its last state."""
        meta = entry.obj["metadata"]
        if meta.get("deletionTimestamp"):
            return entry.obj
        uid = meta["uid"]
        if policy == "Orphan":
            self._orphan_dependents(uid)
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and self._index.has_dependents(uid):
            finalizers.append(_FOREGROUND)
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            finalizers.append(_CRD_CLEANUP)
        if rtype.kind == "Namespace" and self._index.is_builtin(rtype):
            finalizers.append("kubernetes")
        if not finalizers:
            self.remove(rtype, entry)
            return entry.obj
        terminating = next_state(entry.obj)
        terminating["metadata"].update(
            deletionTimestamp=now_rfc3339(),
            deletionGracePeriodSeconds=0,
            generation=meta.get("generation", 1) + 1,
        )
        real_finalizers = [f for f in finalizers if f != "kubernetes"]
        if real_finalizers:
            terminating["metadata"]["finalizers"] = real_finalizers
        if rtype.kind == "Namespace" and self._index.is_builtin(rtype):
            terminating["status"] = {"phase": "Terminating"}
        self._index.commit(rtype, entry, terminating)
        if _FOREGROUND in finalizers:
            self._delete_dependents(uid, foreground=True)
        if _CRD_CLEANUP in finalizers:
            self._delete_custom_objects(terminating)
        if rtype.kind == "Namespace" and self._index.is_builtin(rtype):
            self._delete_namespace_content(meta["name"])
        return entry.obj

    def remove(self, rtype: ResourceType, entry: Entry) -> None:
        """Drop an object for good, then collect what depended on it."""
        obj = self._index.drop(rtype, entry)
        meta = obj["metadata"]
        namespace, uid = meta.get("namespace", ""), meta["uid"]
        self._collect_dependents(uid)
        for ref in meta.get("ownerReferences") or []:
            self._release_foreground(ref.get("uid", ""))
        if namespace:
            self._finish_namespace(namespace)
        if not self._index.is_builtin(rtype):
            self._finish_crd(rtype.group, rtype.plural)
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            self._index.stop_serving_crd(obj)

    def _without_owner(self, rtype: ResourceType, entry: Entry, uid: str) -> None:
        """Drop an owner's reference from a dependent, as the garbage collector does."""
        new = next_state(entry.obj)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        collector = manager_id("garbage-collector", False, None)
        record_ownership(entry, entry.obj, new, collector, None, self._index.strategy(rtype))
        self._index.commit(rtype, entry, new)

    def _orphan_dependents(self, uid: str) -> None:
        """Release every dependent of an owner."""
        for rtype, entry in list(self._index.dependents(uid)):
            self._without_owner(rtype, entry, uid)

    def _collect_dependents(self, uid: str) -> None:
        """Delete the dependents of a removed owner that have no other live owner."""
        for rtype, entry in list(self._index.dependents(uid)):
            if self._index.lookup(self._index.key_of(rtype, entry)) is None:
                continue
            refs = entry.obj["metadata"].get("ownerReferences") or []
            if any(
                r.get("uid") != uid and self._index.uid_key(r.get("uid", "")) is not None
                for r in refs
            ):
                self._without_owner(rtype, entry, uid)
            else:
                self.delete(rtype, entry, "Background")
        self._index.forget_dependents(uid)

    def _delete_dependents(self, uid: str, *, foreground: bool) -> None:
        """Delete every dependent of an owner being deleted in the foreground."""
        for rtype, entry in list(self._index.dependents(uid)):
            if self._index.lookup(self._index.key_of(rtype, entry)) is None:
                continue
            blocking = any(
                r.get("uid") == uid and r.get("blockOwnerDeletion")
                for r in entry.obj["metadata"].get("ownerReferences") or []
            )
            self.delete(rtype, entry, "Foreground" if foreground and blocking else "Background")
        self._release_foreground(uid)

    def _release_foreground(self, owner_uid: str) -> None:
        """Finish a foreground deletion once no dependent blocks it."""
        key = self._index.uid_key(owner_uid)
        found = self._index.lookup(key) if key else None
        if found is None:
            return
        rtype, entry = found
        finalizers = entry.obj["metadata"].get("finalizers") or []
        if _FOREGROUND not in finalizers:
            return
        for _, dependent in self._index.dependents(owner_uid):
            for ref in dependent.obj["metadata"].get("ownerReferences") or []:
                if ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion"):
                    return
        self._drop_finalizer(rtype, entry, _FOREGROUND)

    def _drop_finalizer(self, rtype: ResourceType, entry: Entry, finalizer: str) -> None:
        """Remove a finalizer, removing the object when it was the last."""
        new = next_state(entry.obj)
        remaining = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        if remaining:
            new["metadata"]["finalizers"] = remaining
        else:
            new["metadata"].pop("finalizers", None)
        self._index.commit(rtype, entry, new)
        if not remaining:
            self.remove(rtype, entry)

    def _delete_namespace_content(self, namespace: str) -> None:
        """Delete every object in a terminating namespace."""
        for rtype in self._index.resource_types():
            if not rtype.namespaced:
                continue
            objects = self._index.objects(rtype.group, rtype.plural)
            for key in sorted(k for k in objects if k[0] == namespace):
                entry = objects.get(key)
                if entry is not None:
                    self.delete(rtype, entry, "Background")
        self._finish_namespace(namespace)

    def _finish_namespace(self, namespace: str) -> None:
        """Remove a terminating namespace once it is empty."""
        ns_type = self._index.resource("", "namespaces")
        entry = self._index.objects("", "namespaces").get(("", namespace))
        if entry is None or not entry.obj["metadata"].get("deletionTimestamp"):
            return
        if self._index.namespace_count(namespace) > 0 or entry.obj["metadata"].get("finalizers"):
            return
        self.remove(ns_type, entry)

    def _delete_custom_objects(self, crd: dict[str, Any]) -> None:
        """Delete every object of a terminating CRD's resource."""
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        rtype = self._index.served(*key)
        if rtype is not None and not self._index.is_builtin(rtype):
            objects = self._index.objects(*key)
            for object_key in sorted(objects):
                entry = objects.get(object_key)
                if entry is not None:
                    self.delete(rtype, entry, "Background")
        self._finish_crd(*key)

    def _finish_crd(self, group: str, plural: str) -> None:
        """Let a terminating CRD go once its resource has no objects left."""
        if (group, plural) not in BUILTIN_KEYS and self._index.objects(group, plural):
            return
        crd_type = self._index.resource(CRD_GROUP, CRD_PLURAL)
        entry = self._index.objects(CRD_GROUP, CRD_PLURAL).get(("", f"{plural}.{group}"))
        if entry is None or _CRD_CLEANUP not in (entry.obj["metadata"].get("finalizers") or []):
            return
        self._drop_finalizer(crd_type, entry, _CRD_CLEANUP)
