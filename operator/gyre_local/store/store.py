"""The in-memory object store with Kubernetes API semantics: the local cluster's state."""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import uuid
from collections.abc import Callable
from typing import Any

from gyre_local.clock import now_rfc3339
from gyre_local.jsoncopy import json_copy
from gyre_local.names import random_suffix
from gyre_local.store import patching
from gyre_local.store.admission import admit_pod, service_account_name
from gyre_local.store.builtins import (
    CRD_GROUP,
    CRD_PLURAL,
    DEFAULT_CLASS_ANNOTATION,
    GENERATION_RESOURCES,
    INITIAL_NAMESPACES,
    SELECTING_WORKLOADS,
    STORAGE_PROTECTION_FINALIZERS,
    ResourceType,
    crd_causes,
    crd_status,
    from_version,
    from_view,
    initial_status,
    json_patch_from_view,
    scale_of,
    selector_causes,
    set_defaults,
    to_version,
    to_view,
)
from gyre_local.store.errors import (
    ApiError,
    Causes,
    bad_request,
    invalid,
    not_found,
    qualified,
    resource_details,
)
from gyre_local.store.garbage import GarbageCollector
from gyre_local.store.index import ObjectIndex
from gyre_local.store.ownership import Entry, apply_merge, manager_id, record_ownership
from gyre_local.store.pagination import (
    ListPage,
    decode_continue,
    encode_continue,
    parse_resource_version,
)
from gyre_local.store.priority import (
    SCHEDULING_GROUP,
    SYSTEM_PRIORITY_CLASSES,
    PriorityRefused,
    admit_priority,
)
from gyre_local.store.rules import (
    changes_generation,
    check_finalizers,
    check_url_name,
    merge_for_write,
    scope_namespace,
    validate_name,
)
from gyre_local.store.schedules import cron_job_causes
from gyre_local.store.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from gyre_local.store.watches import Event, Watch, WatchFilter

__all__ = [
    "ApiError",
    "ListPage",
    "ResourceType",
    "Store",
    "Watch",
    "bad_request",
    "invalid",
    "not_found",
]

Objects = list[dict[str, Any]]  # named so Store.list does not shadow it in annotations
LogProvider = Callable[[str, str, str | None], str]


class Store:
    """An in-memory Kubernetes object store; call it only from its event loop's thread.

    The API semantics of reads and writes live here; the objects, their indexes and the
    history of changes in an ObjectIndex; deletion cascades in a GarbageCollector on that index.
    """

    def __init__(self, *, history_size: int = 10_000, bookmark_interval: float = 60.0) -> None:
        self._index = ObjectIndex(history_size=history_size)
        self._gc = GarbageCollector(self._index)
        self._bookmark_interval = bookmark_interval
        self._log_provider: LogProvider | None = None
        self._cluster_ips = (f"10.96.{n // 250}.{n % 250 + 1}" for n in itertools.count(1))
        for namespace in INITIAL_NAMESPACES:
            self.create("", "namespaces", None, {"metadata": {"name": namespace}})
        for priority_class in SYSTEM_PRIORITY_CLASSES:
            self.create(SCHEDULING_GROUP, "priorityclasses", None, priority_class)

    # ---- resource types ----

    def resource(self, group: str, plural: str) -> ResourceType:
        """The resource type served under a group and plural name; raises NotFound."""
        return self._index.resource(group, plural)

    def resource_types(self) -> list[ResourceType]:
        """Every resource type currently served (built-ins and established custom resources)."""
        return self._index.resource_types()

    def is_builtin(self, rtype: ResourceType) -> bool:
        """Whether a type is compiled in rather than defined by a CRD."""
        return self._index.is_builtin(rtype)

    def schema(self, rtype: ResourceType, version: str) -> dict[str, Any] | None:
        """The openAPIV3Schema of a custom resource version, if it has one."""
        return self._index.schemas.schema(rtype, version)

    @property
    def resource_version(self) -> str:
        """The current global resourceVersion."""
        return self._index.resource_version

    @property
    def retained_events(self) -> int:
        """How many events the bounded watch history currently holds."""
        return self._index.retained_events

    # ---- reads ----

    def get(
        self,
        group: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """One object (or its scale subresource)."""
        rtype = self.resource(group, plural)
        if rtype.stored_as:
            return to_view(rtype, self.get(*rtype.stored_as, namespace, name))
        entry = self._index.entry(rtype, namespace, name)
        if subresource == "scale":
            self._check_subresource(rtype, subresource)
            return scale_of(entry.obj)
        return json_copy(entry.obj)

    def list(
        self,
        group: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every matching object, sorted by namespace and name, with the list resourceVersion."""
        page = self.list_page(
            group, plural, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return page.items, page.resource_version

    def list_page(
        self,
        group: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListPage:
        """A page of matching objects; `continue_token` resumes after the previous page."""
        rtype = self.resource(group, plural)
        scope, labels, fields = self._selection(rtype, namespace, label_selector, field_selector)
        matches = _matcher(scope, labels, fields)
        group, plural = rtype.stored_as or (group, plural)
        present = (lambda obj: to_view(rtype, obj)) if rtype.stored_as else json_copy
        objects = self._index.objects(group, plural)
        list_rv = self._index.revision
        keys = self._index.keys(group, plural, scope, labels)
        if continue_token:
            list_rv, start = decode_continue(continue_token)
            keys = keys[bisect.bisect_right(keys, start) :]
        items: list[dict[str, Any]] = []
        last: tuple[str, str] | None = None
        remaining = 0
        for position, key in enumerate(keys):
            obj = objects[key].obj
            if not matches(obj):
                continue
            if limit and len(items) >= limit:
                remaining = sum(1 for k in keys[position:] if matches(objects[k].obj))
                break
            items.append(present(obj))
            last = key
        token = encode_continue(list_rv, last) if remaining and last is not None else None
        return ListPage(items, str(list_rv), token, remaining if token else None)

    def _selection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> tuple[str | None, LabelSelector, FieldSelector]:
        """The namespace in scope (None: all) and the parsed selectors; raises BadRequest."""
        allowed = {"metadata.name", "metadata.namespace", *rtype.field_labels}
        try:
            labels = parse_label_selector(label_selector)
            fields = parse_field_selector(field_selector, allowed.__contains__)
        except SelectorError as error:
            raise bad_request(str(error)) from error
        fields = tuple(dataclasses.replace(f, field=rtype.field_path(f.field)) for f in fields)
        return (namespace if rtype.namespaced else None) or None, labels, fields

    def watch(
        self,
        group: str,
        plural: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = False,
        timeout_seconds: float | None = None,
        read_only: bool = False,
    ) -> Watch:
        """Watch changes; an unset or "0" resourceVersion starts with the current state as ADDED.

        A `read_only` watch hands out the stored states themselves rather than copies: for a
        consumer that only reads (serializes) them and never keeps or changes them."""
        rtype = self.resource(group, plural)
        scope, labels, fields = self._selection(rtype, namespace, label_selector, field_selector)
        matches = _matcher(scope, labels, fields)
        group, plural = rtype.stored_as or (group, plural)
        watch = (ViewWatch if rtype.stored_as else Watch)(
            rtype,
            matches,
            current_rv=lambda: self._index.revision,
            on_close=lambda w: self._index.history.unsubscribe(group, plural, w),
            allow_bookmarks=allow_bookmarks,
            timeout_seconds=timeout_seconds,
            bookmark_interval=self._bookmark_interval,
            read_only=read_only,
        )
        if resource_version in (None, "", "0"):
            objects = self._index.objects(group, plural)
            for key in self._index.keys(group, plural, scope, labels):
                event = Event(self._index.revision, group, plural, "ADDED", objects[key].obj, None)
                watch.offer(event, bounded=False)
        elif not self._index.history.replay(
            watch, group, plural, parse_resource_version(resource_version)
        ):
            return watch
        self._index.history.subscribe(group, plural, watch)
        return watch

    def set_log_provider(self, provider: LogProvider) -> None:
        """Register the function that serves pod logs: (namespace, pod, container) -> text."""
        self._log_provider = provider

    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str:
        """The log text of a pod's container."""
        self._index.entry(self.resource("", "pods"), namespace, name)
        return self._log_provider(namespace, name, container) if self._log_provider else ""

    # ---- writes ----

    def create(
        self,
        group: str,
        plural: str,
        namespace: str | None,
        obj: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        field_validation: str | None = None,
    ) -> dict[str, Any]:
        """Create an object; raises AlreadyExists, NotFound (namespace) or Invalid."""
        rtype = self.resource(group, plural)
        if rtype.stored_as:
            created = self.create(
                *rtype.stored_as,
                namespace,
                from_view(obj),
                subresource=subresource,
                dry_run=dry_run,
                field_manager=field_manager,
                field_validation=field_validation,
            )
            return to_view(rtype, created)
        return self._create(
            rtype,
            namespace,
            obj,
            subresource=subresource,
            dry_run=dry_run,
            manager=field_manager,
            applied_paths=None,
            strict=field_validation == "Strict",
        )

    def _create(
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: dict[str, Any],
        *,
        subresource: str | None,
        dry_run: bool,
        manager: str | None,
        applied_paths: set[patching.FieldPath] | None,
        strict: bool = False,
    ) -> dict[str, Any]:
        """Create an object (an apply of a missing object passes the applied field paths)."""
        if subresource:
            raise ApiError(405, "MethodNotAllowed", f"create is not supported on {subresource}")
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        obj = json_copy(body)
        metadata = obj.setdefault("metadata", {})
        namespace = scope_namespace(rtype, namespace, metadata)
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = f"{metadata['generateName']}{random_suffix()}"
        name = metadata.get("name") or ""
        validate_name(rtype, name, builtin=self.is_builtin(rtype))
        self._check_namespace_open(rtype, namespace, name)
        if (namespace or "", name) in self._index.objects(rtype.group, rtype.plural):
            raise ApiError(
                409,
                "AlreadyExists",
                f'{qualified(rtype)} "{name}" already exists',
                resource_details(rtype, name),
            )
        given_group, _, given_version = str(obj.get("apiVersion") or "").rpartition("/")
        served = given_group == rtype.group and given_version in rtype.versions
        obj["apiVersion"] = obj["apiVersion"] if served else rtype.api_version
        obj["kind"] = rtype.kind
        for server_field in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            metadata.pop(server_field, None)
        metadata.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
        if self._has_generation(rtype):
            metadata["generation"] = 1
        if rtype.has_status:
            obj.pop("status", None)
        if self.is_builtin(rtype):
            set_defaults(rtype.kind, obj, lambda: next(self._cluster_ips))
            if rtype.has_status:
                obj["status"] = initial_status(rtype.kind)
            if rtype.kind == "PersistentVolumeClaim":
                self._admit_claim(obj["spec"])
            protection = STORAGE_PROTECTION_FINALIZERS.get(rtype.kind)
            if protection and protection not in (metadata.get("finalizers") or []):
                # StorageObjectInUseProtection: kept until no pod uses the claim or volume.
                metadata["finalizers"] = [*(metadata.get("finalizers") or []), protection]
            if rtype.kind == "Pod":
                account_key = (namespace or "", service_account_name(obj))
                account = self._index.objects("", "serviceaccounts").get(account_key)
                admit_pod(obj, account.obj if account else None)
                self._admit_priority(rtype, obj)
        obj = self._index.schemas.prepare(rtype, obj, None, subresource=None, strict=strict)
        self._validate(rtype, obj, None, subresource=None)
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            obj["status"] = crd_status(obj, now_rfc3339())
        if dry_run:
            return obj
        strategy = self._index.strategy(rtype)
        owned = applied_paths if applied_paths is not None else patching.field_paths(obj, strategy)
        owner = manager_id(manager, applied_paths is not None, None)
        self._index.add(rtype, Entry(obj, {owner: owned}, {owner: now_rfc3339()}))
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            self._index.serve_crd(obj)
        return json_copy(obj)

    def replace(
        self,
        group: str,
        plural: str,
        namespace: str | None,
        name: str,
        obj: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        field_validation: str | None = None,
    ) -> dict[str, Any]:
        """Replace an object (PUT); a stale metadata.resourceVersion raises Conflict."""
        rtype = self.resource(group, plural)
        if rtype.stored_as:
            replaced = self.replace(
                *rtype.stored_as,
                namespace,
                name,
                from_view(obj),
                subresource=subresource,
                dry_run=dry_run,
                field_manager=field_manager,
                field_validation=field_validation,
            )
            return to_view(rtype, replaced)
        entry = self._index.entry(rtype, namespace, name)
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        check_url_name(obj.get("metadata"), name)
        if subresource == "scale":
            return self._write_scale(rtype, entry, obj, dry_run, field_manager)
        if subresource == "status":
            # Only the status (and the resourceVersion to check) of the body is written.
            obj = {k: v for k, v in obj.items() if k in ("metadata", "status")}
        return self._update(
            rtype,
            entry,
            json_copy(obj),
            subresource=subresource,
            dry_run=dry_run,
            manager=field_manager,
            strict=field_validation == "Strict",
        )

    def patch(
        self,
        group: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Any,
        patch_type: str,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        field_validation: str | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Patch an object with one of the four Kubernetes patch types; a merge, JSON or
        strategic patch applies to the object as the served `version` shows it."""
        strict = field_validation == "Strict"
        rtype = self.resource(group, plural)
        if rtype.stored_as:
            stored_patch = (
                json_patch_from_view(patch)
                if patch_type == patching.JSON_PATCH
                else from_view(patch)
            )
            patched = self.patch(
                *rtype.stored_as,
                namespace,
                name,
                stored_patch,
                patch_type,
                subresource=subresource,
                field_manager=field_manager,
                force=force,
                dry_run=dry_run,
                field_validation=field_validation,
            )
            return to_view(rtype, patched)
        if patch_type == patching.APPLY_PATCH:
            return self._apply(
                rtype, namespace, name, patch, subresource, field_manager, force, dry_run, strict
            )
        if patch_type == patching.STRATEGIC_MERGE_PATCH and not self.is_builtin(rtype):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{patching.JSON_PATCH}, {patching.MERGE_PATCH}, {patching.APPLY_PATCH}",
            )
        entry = self._index.entry(rtype, namespace, name)
        current = scale_of(entry.obj) if subresource == "scale" else entry.obj
        if version and subresource != "scale":
            current = to_version(rtype, version, current)
        if subresource == "status" and patch_type == patching.MERGE_PATCH:
            # A merge patch touches only the members it names, and of the patched object the
            # status subresource writes only the status (and checks the resourceVersion).
            current = {k: v for k, v in current.items() if k in ("metadata", "status")}
        try:
            if patch_type == patching.MERGE_PATCH:
                if not isinstance(patch, dict):
                    raise patching.PatchError("merge patch must be a JSON object")
                patched = patching.merge_patch(current, patch)
            elif patch_type == patching.JSON_PATCH:
                patched = patching.json_patch(current, patch)
            elif patch_type == patching.STRATEGIC_MERGE_PATCH:
                if not isinstance(patch, dict):
                    raise patching.PatchError("strategic merge patch must be a JSON object")
                patched = patching.strategic_merge(current, patch, self._index.strategy(rtype))
            else:
                raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {patch_type}")
        except patching.PatchError as error:
            raise bad_request(str(error)) from error
        except patching.PatchNotApplicable as error:
            raise ApiError(422, "Invalid", str(error)) from error
        if version and subresource != "scale" and isinstance(patched, dict):
            patched = from_version(rtype, version, patched)
        if subresource == "scale":
            return self._write_scale(rtype, entry, patched, dry_run, field_manager)
        return self._update(
            rtype,
            entry,
            patched,
            subresource=subresource,
            dry_run=dry_run,
            manager=field_manager,
            strict=strict,
        )

    def delete(
        self,
        group: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete an object; returns its last state (with deletionTimestamp if still present)."""
        rtype = self.resource(group, plural)
        if rtype.stored_as:
            deleted = self.delete(
                *rtype.stored_as,
                namespace,
                name,
                propagation_policy=propagation_policy,
                dry_run=dry_run,
            )
            return to_view(rtype, deleted)
        entry = self._index.entry(rtype, namespace, name)
        policy = propagation_policy or ("Orphan" if rtype.orphan_by_default else "Background")
        if policy not in ("Orphan", "Background", "Foreground"):
            raise bad_request(f"unsupported propagationPolicy {policy!r}")
        if dry_run:
            return json_copy(entry.obj)
        return json_copy(self._gc.delete(rtype, entry, policy))

    def delete_collection(
        self,
        group: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation_policy: str | None = None,
        dry_run: bool = False,
    ) -> Objects:
        """Delete every matching object; returns their last states."""
        items, _ = self.list(
            group, plural, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return [
            self.delete(
                group,
                plural,
                item["metadata"].get("namespace"),
                item["metadata"]["name"],
                propagation_policy=propagation_policy,
                dry_run=dry_run,
            )
            for item in items
        ]

    # ---- internals: checks ----

    def _check_namespace_open(self, rtype: ResourceType, namespace: str, name: str) -> None:
        """Raise unless a namespaced object's namespace exists and is not terminating."""
        if not rtype.namespaced:
            return
        ns_type = self.resource("", "namespaces")
        entry = self._index.objects("", "namespaces").get(("", namespace))
        if entry is None:
            raise not_found(ns_type, namespace)
        if entry.obj["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{qualified(rtype)} "{name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                resource_details(rtype, name),
            )

    def _admit_priority(self, rtype: ResourceType, pod: dict[str, Any]) -> None:
        """The Priority admission plugin: the pod's priority from its PriorityClass; a class
        that does not exist, or a priority given that is not the class's, refuses it (403)."""
        classes = self._index.objects(SCHEDULING_GROUP, "priorityclasses").values()
        try:
            admit_priority(pod["spec"], (entry.obj for entry in classes))
        except PriorityRefused as error:
            name = pod["metadata"].get("name", "")
            raise ApiError(
                403,
                "Forbidden",
                f'{qualified(rtype)} "{name}" is forbidden: {error}',
                resource_details(rtype, name),
            ) from None

    def _admit_claim(self, spec: dict[str, Any]) -> None:
        """As the DefaultStorageClass admission plugin does: a new claim naming no class (an
        empty name is a class) gets the default StorageClass, when there is one."""
        if spec.get("storageClassName") is not None:
            return
        for entry in self._index.objects("storage.k8s.io", "storageclasses").values():
            annotations = entry.obj["metadata"].get("annotations") or {}
            if annotations.get(DEFAULT_CLASS_ANNOTATION) == "true":
                spec["storageClassName"] = entry.obj["metadata"]["name"]
                return

    def _has_generation(self, rtype: ResourceType) -> bool:
        """Whether the type's metadata.generation counts its spec changes."""
        return not self.is_builtin(rtype) or (rtype.group, rtype.plural) in GENERATION_RESOURCES

    def _check_subresource(self, rtype: ResourceType, subresource: str) -> None:
        """Raise NotFound unless the type serves the subresource."""
        if subresource not in rtype.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _validate(
        self,
        rtype: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        subresource: str | None,
    ) -> None:
        """Raise Invalid when an object breaks its CRD rules or its schema."""
        causes: Causes = []
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            causes.extend(crd_causes(obj))
        if (rtype.group, rtype.plural) == ("batch", "cronjobs") and subresource is None:
            causes.extend(cron_job_causes(obj, old))
        if rtype.group == "apps" and rtype.kind in SELECTING_WORKLOADS and subresource is None:
            causes.extend(selector_causes(obj))
        causes.extend(self._index.schemas.causes(rtype, obj, old, subresource=subresource))
        if causes:
            raise invalid(rtype, obj["metadata"].get("name", ""), causes)

    # ---- internals: updates ----

    def _update(
        self,
        rtype: ResourceType,
        entry: Entry,
        new: dict[str, Any],
        *,
        subresource: str | None,
        dry_run: bool,
        manager: str | None,
        applied_paths: set[patching.FieldPath] | None = None,
        strict: bool = False,
        via_scale: bool = False,
    ) -> dict[str, Any]:
        """Write a new state of an object (whole, or through a subresource)."""
        old = entry.obj
        old_meta = old["metadata"]
        new_meta = new.setdefault("metadata", {})
        if not isinstance(new_meta, dict):
            raise bad_request("metadata must be an object")
        if subresource is not None and subresource != "status":
            self._check_subresource(rtype, subresource)
            raise ApiError(405, "MethodNotAllowed", f"update is not supported on {subresource}")
        if subresource == "status":
            self._check_subresource(rtype, "status")
        requested_rv = new_meta.get("resourceVersion")
        if requested_rv and requested_rv != old_meta["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {qualified(rtype)} "{old_meta["name"]}": '
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
                resource_details(rtype, old_meta["name"]),
            )
        merged = merge_for_write(rtype, old, new, subresource)
        # Through the status subresource all but the status is the stored (defaulted) object's,
        # shared with it: defaulting would change nothing, and must not write into it.
        if self.is_builtin(rtype) and subresource != "status":
            kept_ip = (old.get("spec") or {}).get("clusterIP")
            set_defaults(rtype.kind, merged, lambda: kept_ip or next(self._cluster_ips))
        merged = self._index.schemas.prepare(
            rtype, merged, old, subresource=subresource, strict=strict
        )
        self._validate(rtype, merged, old, subresource=subresource)
        check_finalizers(rtype, old, merged)
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            merged["status"] = crd_status(merged, now_rfc3339())
        if self._has_generation(rtype) and changes_generation(rtype, old, merged):
            merged["metadata"]["generation"] = old_meta.get("generation", 1) + 1
        if merged == old:
            return json_copy(old)
        if dry_run:
            return json_copy(merged)  # it may share values with the stored object
        owner = manager_id(
            manager, applied_paths is not None, "scale" if via_scale else subresource
        )
        record_ownership(entry, old, merged, owner, applied_paths, self._index.strategy(rtype))
        self._index.commit(rtype, entry, merged)
        if merged["metadata"].get("deletionTimestamp") and not merged["metadata"].get("finalizers"):
            self._gc.remove(rtype, entry)
        return json_copy(entry.obj)

    # ---- internals: scale subresource ----

    def _write_scale(
        self,
        rtype: ResourceType,
        entry: Entry,
        scale: dict[str, Any],
        dry_run: bool,
        manager: str | None,
    ) -> dict[str, Any]:
        """Set spec.replicas through the scale subresource; returns the new Scale."""
        self._check_subresource(rtype, "scale")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(
                rtype,
                entry.obj["metadata"]["name"],
                [
                    (
                        "FieldValueInvalid",
                        "spec.replicas",
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                    )
                ],
            )
        new = json_copy(entry.obj)
        new.setdefault("spec", {})["replicas"] = replicas
        new["metadata"]["resourceVersion"] = (scale.get("metadata") or {}).get("resourceVersion")
        updated = self._update(
            rtype, entry, new, subresource=None, dry_run=dry_run, manager=manager, via_scale=True
        )
        return scale_of(updated)

    # ---- internals: server-side apply ----

    def _apply(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        applied: Any,
        subresource: str | None,
        manager: str | None,
        force: bool,
        dry_run: bool,
        strict: bool,
    ) -> dict[str, Any]:
        """Server-side apply: create the object, or merge the configuration into it."""
        if not manager:
            raise bad_request("PATCH, application/apply-patch+yaml requires fieldManager parameter")
        if not isinstance(applied, dict):
            raise bad_request("apply patch must be a YAML or JSON object")
        metadata = applied.setdefault("metadata", {})
        check_url_name(metadata, name)
        metadata["name"] = name
        strategy = self._index.strategy(rtype)
        paths = patching.field_paths(applied, strategy)
        paths = {p for p in paths if (p[0] == "status") == (subresource == "status")}
        scope = (namespace or "") if rtype.namespaced else ""
        entry = self._index.objects(rtype.group, rtype.plural).get((scope, name))
        if entry is None:
            if subresource:
                raise not_found(rtype, name)
            return self._create(
                rtype,
                namespace,
                applied,
                subresource=None,
                dry_run=dry_run,
                manager=manager,
                applied_paths=paths,
                strict=strict,
            )
        applier = manager_id(manager, True, subresource)
        new = apply_merge(rtype, entry, applied, paths, applier, strategy, force=force)
        return self._update(
            rtype,
            entry,
            new,
            subresource=subresource,
            dry_run=dry_run,
            manager=manager,
            applied_paths=paths,
            strict=strict,
        )


def _matcher(scope: str | None, labels: LabelSelector, fields: FieldSelector) -> WatchFilter:
    """A predicate for the objects in scope (any namespace when None) matching the selectors."""

    def matches(obj: dict[str, Any]) -> bool:
        metadata = obj.get("metadata", {})
        if scope and metadata.get("namespace") != scope:
            return False
        return labels_match(labels, metadata.get("labels")) and fields_match(fields, obj)

    return matches


class ViewWatch(Watch):
    """A watch of a view type: the stored objects' events, shown as the view shows them."""

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        event_type, obj = await super().__anext__()
        if event_type in ("ADDED", "MODIFIED", "DELETED"):
            obj = to_view(self._rtype, obj)
        return event_type, obj
