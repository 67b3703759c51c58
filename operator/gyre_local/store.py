"""The in-memory object store with Kubernetes API semantics: the local cluster's state."""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import itertools
import json
import random
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gyre_local import patching
from gyre_local.builtins import (
    BUILTIN_TYPES,
    CRD_GROUP,
    CRD_PLURAL,
    INITIAL_NAMESPACES,
    ResourceType,
    crd_causes,
    crd_resource_type,
    crd_status,
    initial_status,
    scale_of,
    set_defaults,
)
from gyre_local.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

__all__ = ["ApiError", "ListPage", "ResourceType", "Store", "Watch"]

ObjKey = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name
Objects = list[dict[str, Any]]  # named so Store.list does not shadow it in annotations
Causes = list[tuple[str, str, str]]  # (reason, field, detail) of a 422 Invalid
LogProvider = Callable[[str, str, str | None], str]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_LABEL_NAMED_KINDS = frozenset({"Namespace", "Service"})
_IDENTITY_METADATA = ("name", "namespace", "uid", "creationTimestamp", "generation")
_FOREGROUND = "foregroundDeletion"
_CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
_SYSTEM_MANAGER = "kube-apiserver"
_BUILTIN_KEYS = frozenset((t.group, t.plural) for t in BUILTIN_TYPES)


class ApiError(Exception):
    """A Kubernetes API error; .status() -> the metav1.Status dict."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The metav1.Status object describing this error."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status


def bad_request(message: str) -> ApiError:
    """A 400 BadRequest error."""
    return ApiError(400, "BadRequest", message)


def _resource_details(rtype: ResourceType, name: str, kind: str | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if rtype.group:
        details["group"] = rtype.group
    details["kind"] = kind or rtype.plural
    return details


def not_found(rtype: ResourceType, name: str) -> ApiError:
    """A 404 NotFound error for one named object."""
    return ApiError(
        404, "NotFound", f'{_qualified(rtype)} "{name}" not found', _resource_details(rtype, name)
    )


def _qualified(rtype: ResourceType) -> str:
    return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural


def invalid(rtype: ResourceType, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """A 422 Invalid error from (reason, field, detail) causes, worded as Kubernetes does."""
    kind = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
    parts = [f"{field_path}: {detail}" for _, field_path, detail in causes]
    summary = parts[0] if len(parts) == 1 else f"[{', '.join(parts)}]"
    details = _resource_details(rtype, name, rtype.kind)
    details["causes"] = [
        {"reason": reason, "message": detail, "field": field_path}
        for reason, field_path, detail in causes
    ]
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', details)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# A field manager as server-side apply tells them apart: (name, operation, subresource).
ManagerId = tuple[str, str, str]


def _manager_id(name: str | None, applied: bool, subresource: str | None) -> ManagerId:
    return (name or _SYSTEM_MANAGER, "Apply" if applied else "Update", subresource or "")


@dataclass
class _Entry:
    obj: dict[str, Any]
    managers: dict[ManagerId, set[patching.FieldPath]] = field(default_factory=dict)
    times: dict[ManagerId, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ListPage:
    """One page of a list: items, the list resourceVersion, continue token and remaining count."""

    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None = None
    remaining: int | None = None


class Store:
    """An in-memory Kubernetes object store; call it only from its event loop's thread."""

    def __init__(self, *, history_size: int = 10_000, bookmark_interval: float = 60.0) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {}
        self._objects: dict[tuple[str, str], dict[tuple[str, str], _Entry]] = {}
        self._by_uid: dict[str, ObjKey] = {}
        self._dependents: dict[str, set[ObjKey]] = {}
        self._namespace_counts: Counter[str] = Counter()
        self._rv = 0
        self._history: deque[Event] = deque(maxlen=history_size)
        self._evicted_rv = 0
        self._watches: dict[tuple[str, str], set[Watch]] = {}
        self._bookmark_interval = bookmark_interval
        self._validators: dict[tuple[str, str, str], Any] = {}
        self._schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._log_provider: LogProvider | None = None
        self._cluster_ips = (f"10.96.{n // 250}.{n % 250 + 1}" for n in itertools.count(1))
        for rtype in BUILTIN_TYPES:
            self._register(rtype)
        for namespace in INITIAL_NAMESPACES:
            self.create("", "namespaces", None, {"metadata": {"name": namespace}})

    # ---- types ----

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
        return (rtype.group, rtype.plural) in _BUILTIN_KEYS

    def schema(self, rtype: ResourceType, version: str) -> dict[str, Any] | None:
        """The openAPIV3Schema of a custom resource version, if it has one."""
        return self._schemas.get((rtype.group, rtype.plural, version))

    @property
    def resource_version(self) -> str:
        """The current global resourceVersion."""
        return str(self._rv)

    @property
    def retained_events(self) -> int:
        """How many events the bounded watch history currently holds."""
        return len(self._history)

    def _register(self, rtype: ResourceType) -> None:
        key = (rtype.group, rtype.plural)
        self._types[key] = rtype
        self._objects.setdefault(key, {})

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
        entry = self._entry(rtype, namespace, name)
        if subresource == "scale":
            self._check_subresource(rtype, subresource)
            return scale_of(entry.obj)
        return copy.deepcopy(entry.obj)

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
        matches = self._filter(rtype, namespace, label_selector, field_selector)
        list_rv = self._rv
        keys = sorted(self._objects[(group, plural)])
        if continue_token:
            list_rv, start = _decode_continue(continue_token)
            keys = [k for k in keys if k > start]
        items: list[dict[str, Any]] = []
        last: tuple[str, str] | None = None
        remaining = 0
        for position, key in enumerate(keys):
            obj = self._objects[(group, plural)][key].obj
            if not matches(obj):
                continue
            if limit and len(items) >= limit:
                remaining = sum(
                    1 for k in keys[position:] if matches(self._objects[(group, plural)][k].obj)
                )
                break
            items.append(copy.deepcopy(obj))
            last = key
        token = _encode_continue(list_rv, last) if remaining and last is not None else None
        return ListPage(items, str(list_rv), token, remaining if token else None)

    def _filter(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> WatchFilter:
        allowed = {"metadata.name", "metadata.namespace", *rtype.field_labels}
        try:
            labels = parse_label_selector(label_selector)
            fields = parse_field_selector(field_selector, allowed.__contains__)
        except SelectorError as error:
            raise bad_request(str(error)) from error
        scope = namespace if rtype.namespaced else None

        def matches(obj: dict[str, Any]) -> bool:
            metadata = obj.get("metadata", {})
            if scope and metadata.get("namespace") != scope:
                return False
            return labels_match(labels, metadata.get("labels")) and fields_match(fields, obj)

        return matches

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
    ) -> Watch:
        """Watch changes; an unset or "0" resourceVersion starts with the current state as ADDED."""
        rtype = self.resource(group, plural)
        matches = self._filter(rtype, namespace, label_selector, field_selector)
        watch = Watch(
            rtype,
            matches,
            current_rv=lambda: self._rv,
            on_close=lambda w: self._watches.get((group, plural), set()).discard(w),
            allow_bookmarks=allow_bookmarks,
            timeout_seconds=timeout_seconds,
            bookmark_interval=self._bookmark_interval,
        )
        if resource_version in (None, "", "0"):
            for key in sorted(self._objects[(group, plural)]):
                obj = self._objects[(group, plural)][key].obj
                watch.offer(Event(self._rv, group, plural, "ADDED", obj, None), bounded=False)
        else:
            since = _parse_rv(resource_version)
            if since < self._evicted_rv:
                gone = ApiError(
                    410, "Expired", f"too old resource version: {since} ({self._evicted_rv})"
                )
                watch.fail(gone.status())
                return watch
            for event in self._history:
                if event.rv > since and (event.group, event.plural) == (group, plural):
                    watch.offer(event, bounded=False)
        self._watches.setdefault((group, plural), set()).add(watch)
        return watch

    def set_log_provider(self, provider: LogProvider) -> None:
        """Register the function that serves pod logs: (namespace, pod, container) -> text."""
        self._log_provider = provider

    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str:
        """The log text of a pod's container."""
        self._entry(self.resource("", "pods"), namespace, name)
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
        return self._create(
            self.resource(group, plural),
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
        if subresource:
            raise ApiError(405, "MethodNotAllowed", f"create is not supported on {subresource}")
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        metadata = obj.setdefault("metadata", {})
        namespace = self._scope(rtype, namespace, metadata)
        if not metadata.get("name") and metadata.get("generateName"):
            suffix = "".join(random.choices(_GENERATE_ALPHABET, k=5))
            metadata["name"] = f"{metadata['generateName']}{suffix}"
        name = metadata.get("name") or ""
        self._validate_name(rtype, name)
        self._check_namespace_open(rtype, namespace, name)
        if (namespace or "", name) in self._objects[(rtype.group, rtype.plural)]:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{_qualified(rtype)} "{name}" already exists',
                _resource_details(rtype, name),
            )
        given_group, _, given_version = str(obj.get("apiVersion") or "").rpartition("/")
        served = given_group == rtype.group and given_version in rtype.versions
        obj["apiVersion"] = obj["apiVersion"] if served else rtype.api_version
        obj["kind"] = rtype.kind
        for server_field in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            metadata.pop(server_field, None)
        metadata.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        if rtype.has_status:
            obj.pop("status", None)
        if self.is_builtin(rtype):
            set_defaults(rtype.kind, obj, lambda: next(self._cluster_ips))
            if rtype.has_status:
                obj["status"] = initial_status(rtype.kind)
        obj = self._prepare_custom(rtype, obj, None, subresource=None, strict=strict)
        self._validate(rtype, obj, None, subresource=None)
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            obj["status"] = crd_status(obj, _now())
        if dry_run:
            return obj
        self._rv += 1
        metadata["resourceVersion"] = str(self._rv)
        strategy = self._strategy(rtype)
        owned = applied_paths if applied_paths is not None else patching.field_paths(obj, strategy)
        owner = _manager_id(manager, applied_paths is not None, None)
        entry = _Entry(obj, {owner: owned}, {owner: _now()})
        self._put(rtype, entry, None)
        self._emit(rtype, "ADDED", obj, None)
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            self._register_crd(obj)
        return copy.deepcopy(obj)

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
        entry = self._entry(rtype, namespace, name)
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        body_name = (obj.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        if subresource == "scale":
            return self._write_scale(rtype, entry, obj, dry_run, field_manager)
        return self._update(
            rtype,
            entry,
            copy.deepcopy(obj),
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
    ) -> dict[str, Any]:
        """Patch an object with one of the four Kubernetes patch types."""
        strict = field_validation == "Strict"
        rtype = self.resource(group, plural)
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
        entry = self._entry(rtype, namespace, name)
        current = scale_of(entry.obj) if subresource == "scale" else entry.obj
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
                patched = patching.strategic_merge(current, patch, self._strategy(rtype))
            else:
                raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {patch_type}")
        except patching.PatchError as error:
            raise bad_request(str(error)) from error
        except patching.PatchNotApplicable as error:
            raise ApiError(422, "Invalid", str(error)) from error
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
        entry = self._entry(rtype, namespace, name)
        policy = propagation_policy or ("Orphan" if rtype.orphan_by_default else "Background")
        if policy not in ("Orphan", "Background", "Foreground"):
            raise bad_request(f"unsupported propagationPolicy {policy!r}")
        if dry_run:
            return copy.deepcopy(entry.obj)
        return copy.deepcopy(self._delete(rtype, entry, policy))

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

    # ---- internals: lookup and checks ----

    def _entry(self, rtype: ResourceType, namespace: str | None, name: str) -> _Entry:
        scope = (namespace or "") if rtype.namespaced else ""
        entry = self._objects[(rtype.group, rtype.plural)].get((scope, name))
        if entry is None:
            raise not_found(rtype, name)
        return entry

    def _scope(self, rtype: ResourceType, namespace: str | None, metadata: dict[str, Any]) -> str:
        if not rtype.namespaced:
            metadata.pop("namespace", None)
            return ""
        body_namespace = metadata.get("namespace")
        if namespace and body_namespace and body_namespace != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        scope = namespace or body_namespace or "default"
        metadata["namespace"] = scope
        return scope

    def _validate_name(self, rtype: ResourceType, name: str) -> None:
        if not name:
            raise invalid(
                rtype,
                "",
                [
                    (
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )
                ],
            )
        label = rtype.kind in _LABEL_NAMED_KINDS and self.is_builtin(rtype)
        pattern, limit = (_DNS_LABEL, 63) if label else (_DNS_SUBDOMAIN, 253)
        if len(name) > limit or not pattern.match(name):
            what = "RFC 1123 label" if label else "RFC 1123 subdomain"
            detail = (
                f'Invalid value: "{name}": a lowercase {what} must consist of lower case '
                "alphanumeric characters, '-'"
                + ("" if label else " or '.'")
                + ", and must start and end with an alphanumeric character"
            )
            raise invalid(rtype, name, [("FieldValueInvalid", "metadata.name", detail)])

    def _check_namespace_open(self, rtype: ResourceType, namespace: str, name: str) -> None:
        if not rtype.namespaced:
            return
        ns_type = self._types[("", "namespaces")]
        entry = self._objects[("", "namespaces")].get(("", namespace))
        if entry is None:
            raise not_found(ns_type, namespace)
        if entry.obj["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{_qualified(rtype)} "{name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                _resource_details(rtype, name),
            )

    def _check_subresource(self, rtype: ResourceType, subresource: str) -> None:
        if subresource not in rtype.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _strategy(self, rtype: ResourceType) -> patching.Strategy:
        return patching.strategy_for(rtype.kind, builtin=self.is_builtin(rtype))

    # ---- internals: validation of custom resources ----

    def _validator(self, rtype: ResourceType, obj: dict[str, Any]) -> Any:
        version = str(obj.get("apiVersion", "")).rpartition("/")[2]
        if version not in rtype.versions:
            version = rtype.version
        key = (rtype.group, rtype.plural, version)
        schema = self._schemas.get(key)
        if schema is None:
            return None
        if key not in self._validators:
            try:
                from gyre_local.validation import SchemaValidator
            except ImportError:
                return None
            self._validators[key] = SchemaValidator(schema)
        return self._validators[key]

    def _prepare_custom(
        self,
        rtype: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        subresource: str | None,
        strict: bool,
    ) -> dict[str, Any]:
        validator = self._validator(rtype, obj)
        if validator is None:
            return obj
        prepared: dict[str, Any] = validator.prepare(obj)
        if strict:
            self._reject_unknown_fields(rtype, obj, prepared)
        if subresource == "status" and old is not None:
            result = copy.deepcopy(old)
            if "status" in prepared:
                result["status"] = prepared["status"]
            else:
                result.pop("status", None)
            result["metadata"] = obj["metadata"]
            return result
        prepared["metadata"] = obj["metadata"]
        return prepared

    def _reject_unknown_fields(
        self, rtype: ResourceType, given: dict[str, Any], prepared: dict[str, Any]
    ) -> None:
        atomic = patching.Strategy()
        kept = patching.field_paths(prepared, atomic)
        unknown = sorted(
            ".".join(str(p) for p in path)
            for path in patching.field_paths(given, atomic) - kept
            if path[0] != "metadata"
        )
        if unknown:
            listed = ", ".join(f'unknown field "{path}"' for path in unknown)
            raise bad_request(
                f'{rtype.kind} in version "{rtype.version}" cannot be handled as a '
                f"{rtype.kind}: strict decoding error: {listed}"
            )

    def _validate(
        self,
        rtype: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        subresource: str | None,
    ) -> None:
        causes: Causes = []
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            causes.extend(crd_causes(obj))
        validator = self._validator(rtype, obj)
        if validator is not None:
            for error in validator.validate(obj, old):
                in_status = error.field == "status" or error.field.startswith("status.")
                if subresource != "status" or in_status:
                    causes.append((error.type, error.field, error.message))
        if causes:
            raise invalid(rtype, obj["metadata"].get("name", ""), causes)

    # ---- internals: updates ----

    def _update(
        self,
        rtype: ResourceType,
        entry: _Entry,
        new: dict[str, Any],
        *,
        subresource: str | None,
        dry_run: bool,
        manager: str | None,
        applied_paths: set[patching.FieldPath] | None = None,
        strict: bool = False,
        via_scale: bool = False,
    ) -> dict[str, Any]:
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
                f'Operation cannot be fulfilled on {_qualified(rtype)} "{old_meta["name"]}": '
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
                _resource_details(rtype, old_meta["name"]),
            )
        merged = self._merge_for_write(rtype, old, new, subresource)
        if self.is_builtin(rtype):
            kept_ip = (old.get("spec") or {}).get("clusterIP")
            set_defaults(rtype.kind, merged, lambda: kept_ip or next(self._cluster_ips))
        merged = self._prepare_custom(rtype, merged, old, subresource=subresource, strict=strict)
        self._validate(rtype, merged, old, subresource=subresource)
        self._check_finalizers(rtype, old, merged)
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            merged["status"] = crd_status(merged, _now())
        if _changes_generation(rtype, old, merged):
            merged["metadata"]["generation"] = old_meta.get("generation", 1) + 1
        if merged == old:
            return copy.deepcopy(old)
        if dry_run:
            return merged
        owner = _manager_id(
            manager, applied_paths is not None, "scale" if via_scale else subresource
        )
        self._record_ownership(rtype, entry, old, merged, owner, applied_paths)
        self._commit(rtype, entry, merged)
        if merged["metadata"].get("deletionTimestamp") and not merged["metadata"].get("finalizers"):
            self._remove(rtype, entry)
        return copy.deepcopy(entry.obj)

    def _merge_for_write(
        self,
        rtype: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
    ) -> dict[str, Any]:
        if subresource == "status":
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            return merged
        merged = new
        merged["apiVersion"] = old["apiVersion"]
        merged["kind"] = old["kind"]
        meta = merged["metadata"]
        for key in (*_IDENTITY_METADATA, "deletionTimestamp", "deletionGracePeriodSeconds"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        meta.pop("managedFields", None)
        if rtype.has_status:
            if "status" in old:
                merged["status"] = old["status"]
            else:
                merged.pop("status", None)
        return merged

    def _check_finalizers(
        self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        if not old["metadata"].get("deletionTimestamp"):
            return
        added = set(new["metadata"].get("finalizers") or []) - set(
            old["metadata"].get("finalizers") or []
        )
        if added:
            listed = ", ".join(f'"{f}"' for f in sorted(added))
            raise invalid(
                rtype,
                old["metadata"]["name"],
                [
                    (
                        "FieldValueForbidden",
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being "
                        f"deleted, found new finalizers []string{{{listed}}}",
                    )
                ],
            )

    def _record_ownership(
        self,
        rtype: ResourceType,
        entry: _Entry,
        old: dict[str, Any],
        new: dict[str, Any],
        manager: ManagerId,
        applied_paths: set[patching.FieldPath] | None,
    ) -> None:
        strategy = self._strategy(rtype)
        before, after = patching.field_paths(old, strategy), patching.field_paths(new, strategy)
        changed = {
            p for p in before | after if patching.value_at(old, p) != patching.value_at(new, p)
        }
        for owner, owned in entry.managers.items():
            if owner != manager:
                owned -= changed
        if applied_paths is not None:
            entry.managers[manager] = set(applied_paths)
        else:
            entry.managers.setdefault(manager, set()).update(changed & after)
        entry.times[manager] = _now()
        for owner in [m for m, owned in entry.managers.items() if not owned]:
            del entry.managers[owner]
            entry.times.pop(owner, None)

    def _commit(self, rtype: ResourceType, entry: _Entry, new: dict[str, Any]) -> None:
        old = entry.obj
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        entry.obj = new
        self._put(rtype, entry, old)
        self._emit(rtype, "MODIFIED", new, old)

    def _put(self, rtype: ResourceType, entry: _Entry, old: dict[str, Any] | None) -> None:
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
        event = Event(self._rv, rtype.group, rtype.plural, event_type, obj, old)
        if len(self._history) == self._history.maxlen:
            self._evicted_rv = self._history[0].rv
        self._history.append(event)
        for watch in list(self._watches.get((rtype.group, rtype.plural), ())):
            watch.offer(event)

    # ---- internals: scale subresource ----

    def _write_scale(
        self,
        rtype: ResourceType,
        entry: _Entry,
        scale: dict[str, Any],
        dry_run: bool,
        manager: str | None,
    ) -> dict[str, Any]:
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
        new = copy.deepcopy(entry.obj)
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
        if not manager:
            raise bad_request("PATCH, application/apply-patch+yaml requires fieldManager parameter")
        if not isinstance(applied, dict):
            raise bad_request("apply patch must be a YAML or JSON object")
        metadata = applied.setdefault("metadata", {})
        if metadata.get("name") and metadata["name"] != name:
            raise bad_request(
                f"the name of the object ({metadata['name']}) does not match the name on the "
                f"URL ({name})"
            )
        metadata["name"] = name
        strategy = self._strategy(rtype)
        paths = patching.field_paths(applied, strategy)
        paths = {p for p in paths if (p[0] == "status") == (subresource == "status")}
        scope = (namespace or "") if rtype.namespaced else ""
        entry = self._objects[(rtype.group, rtype.plural)].get((scope, name))
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
        live = entry.obj
        applier = _manager_id(manager, True, subresource)
        conflicts = [
            (_describe_manager(rtype, owner, entry.times.get(owner)), path)
            for owner, owned in entry.managers.items()
            if owner != applier
            for path in sorted(paths & owned, key=repr)
            if not patching.is_item_path(path)
            and patching.value_at(live, path) != patching.value_at(applied, path)
        ]
        if conflicts and not force:
            raise _apply_conflict(rtype, name, conflicts)
        new = patching.apply_merge(live, applied, strategy)
        others = set().union(
            *(owned for owner, owned in entry.managers.items() if owner != applier)
        )
        if force:
            others -= paths
        dropped = entry.managers.get(applier, set()) - paths
        for path in sorted(dropped, key=len, reverse=True):
            if patching.is_item_key(path):
                continue  # the item itself goes with its item path, found by this key
            if not any(other[: len(path)] == path for other in others):
                patching.remove_path(new, path)
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

    # ---- internals: deletion, garbage collection, cascades ----

    def _delete(self, rtype: ResourceType, entry: _Entry, policy: str) -> dict[str, Any]:
        meta = entry.obj["metadata"]
        if meta.get("deletionTimestamp"):
            return entry.obj
        uid = meta["uid"]
        if policy == "Orphan":
            self._orphan_dependents(uid)
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and self._dependents.get(uid):
            finalizers.append(_FOREGROUND)
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            finalizers.append(_CRD_CLEANUP)
        if rtype.kind == "Namespace" and self.is_builtin(rtype):
            finalizers.append("kubernetes")
        if not finalizers:
            self._remove(rtype, entry)
            return entry.obj
        terminating = copy.deepcopy(entry.obj)
        terminating["metadata"].update(
            deletionTimestamp=_now(),
            deletionGracePeriodSeconds=0,
            generation=meta.get("generation", 1) + 1,
        )
        real_finalizers = [f for f in finalizers if f != "kubernetes"]
        if real_finalizers:
            terminating["metadata"]["finalizers"] = real_finalizers
        if rtype.kind == "Namespace" and self.is_builtin(rtype):
            terminating["status"] = {"phase": "Terminating"}
        self._commit(rtype, entry, terminating)
        if _FOREGROUND in finalizers:
            self._delete_dependents(uid, foreground=True)
        if _CRD_CLEANUP in finalizers:
            self._delete_custom_objects(terminating)
        if rtype.kind == "Namespace" and self.is_builtin(rtype):
            self._delete_namespace_content(meta["name"])
        return entry.obj

    def _remove(self, rtype: ResourceType, entry: _Entry) -> None:
        obj = copy.deepcopy(entry.obj)
        meta = obj["metadata"]
        namespace, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        del self._objects[(rtype.group, rtype.plural)][(namespace, name)]
        self._namespace_counts[namespace] -= 1
        key: ObjKey = (rtype.group, rtype.plural, namespace, name)
        self._by_uid.pop(uid, None)
        for ref in meta.get("ownerReferences") or []:
            self._dependents.get(ref.get("uid", ""), set()).discard(key)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        entry.obj = obj
        self._emit(rtype, "DELETED", obj, None)
        self._collect_dependents(uid)
        for ref in meta.get("ownerReferences") or []:
            self._release_foreground(ref.get("uid", ""))
        if namespace:
            self._finish_namespace(namespace)
        if not self.is_builtin(rtype):
            self._finish_crd(rtype.group, rtype.plural)
        if (rtype.group, rtype.plural) == (CRD_GROUP, CRD_PLURAL):
            self._unregister_crd(obj)

    def _lookup(self, key: ObjKey) -> tuple[ResourceType, _Entry] | None:
        rtype = self._types.get((key[0], key[1]))
        entry = self._objects.get((key[0], key[1]), {}).get((key[2], key[3]))
        return (rtype, entry) if rtype is not None and entry is not None else None

    def _dependent_entries(self, uid: str) -> Iterable[tuple[ResourceType, _Entry]]:
        for key in sorted(self._dependents.get(uid, set())):
            found = self._lookup(key)
            if found is not None:
                yield found

    def _without_owner(self, rtype: ResourceType, entry: _Entry, uid: str) -> None:
        new = copy.deepcopy(entry.obj)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        collector = _manager_id("garbage-collector", False, None)
        self._record_ownership(rtype, entry, entry.obj, new, collector, None)
        self._commit(rtype, entry, new)

    def _orphan_dependents(self, uid: str) -> None:
        for rtype, entry in list(self._dependent_entries(uid)):
            self._without_owner(rtype, entry, uid)

    def _collect_dependents(self, uid: str) -> None:
        for rtype, entry in list(self._dependent_entries(uid)):
            if self._lookup(self._key(rtype, entry)) is None:
                continue
            refs = entry.obj["metadata"].get("ownerReferences") or []
            if any(r.get("uid") != uid and r.get("uid") in self._by_uid for r in refs):
                self._without_owner(rtype, entry, uid)
            else:
                self._delete(rtype, entry, "Background")
        self._dependents.pop(uid, None)

    def _delete_dependents(self, uid: str, *, foreground: bool) -> None:
        for rtype, entry in list(self._dependent_entries(uid)):
            if self._lookup(self._key(rtype, entry)) is None:
                continue
            blocking = any(
                r.get("uid") == uid and r.get("blockOwnerDeletion")
                for r in entry.obj["metadata"].get("ownerReferences") or []
            )
            self._delete(rtype, entry, "Foreground" if foreground and blocking else "Background")
        self._release_foreground(uid)

    def _release_foreground(self, owner_uid: str) -> None:
        key = self._by_uid.get(owner_uid)
        found = self._lookup(key) if key else None
        if found is None:
            return
        rtype, entry = found
        finalizers = entry.obj["metadata"].get("finalizers") or []
        if _FOREGROUND not in finalizers:
            return
        for _, dependent in self._dependent_entries(owner_uid):
            for ref in dependent.obj["metadata"].get("ownerReferences") or []:
                if ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion"):
                    return
        self._drop_finalizer(rtype, entry, _FOREGROUND)

    def _drop_finalizer(self, rtype: ResourceType, entry: _Entry, finalizer: str) -> None:
        new = copy.deepcopy(entry.obj)
        remaining = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        if remaining:
            new["metadata"]["finalizers"] = remaining
        else:
            new["metadata"].pop("finalizers", None)
        self._commit(rtype, entry, new)
        if not remaining:
            self._remove(rtype, entry)

    @staticmethod
    def _key(rtype: ResourceType, entry: _Entry) -> ObjKey:
        meta = entry.obj["metadata"]
        return (rtype.group, rtype.plural, meta.get("namespace", ""), meta["name"])

    def _delete_namespace_content(self, namespace: str) -> None:
        for rtype in list(self._types.values()):
            if not rtype.namespaced:
                continue
            objects = self._objects.get((rtype.group, rtype.plural), {})
            for key in sorted(k for k in objects if k[0] == namespace):
                entry = objects.get(key)
                if entry is not None:
                    self._delete(rtype, entry, "Background")
        self._finish_namespace(namespace)

    def _finish_namespace(self, namespace: str) -> None:
        ns_type = self._types[("", "namespaces")]
        entry = self._objects[("", "namespaces")].get(("", namespace))
        if entry is None or not entry.obj["metadata"].get("deletionTimestamp"):
            return
        if self._namespace_counts[namespace] > 0 or entry.obj["metadata"].get("finalizers"):
            return
        self._remove(ns_type, entry)

    def _delete_custom_objects(self, crd: dict[str, Any]) -> None:
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        rtype = self._types.get(key)
        if rtype is not None and not self.is_builtin(rtype):
            for object_key in sorted(self._objects[key]):
                entry = self._objects[key].get(object_key)
                if entry is not None:
                    self._delete(rtype, entry, "Background")
        self._finish_crd(*key)

    def _finish_crd(self, group: str, plural: str) -> None:
        if (group, plural) not in _BUILTIN_KEYS and self._objects.get((group, plural)):
            return
        crd_type = self._types[(CRD_GROUP, CRD_PLURAL)]
        entry = self._objects[(CRD_GROUP, CRD_PLURAL)].get(("", f"{plural}.{group}"))
        if entry is None or _CRD_CLEANUP not in (entry.obj["metadata"].get("finalizers") or []):
            return
        self._drop_finalizer(crd_type, entry, _CRD_CLEANUP)

    # ---- internals: custom resource definitions ----

    def _register_crd(self, crd: dict[str, Any]) -> None:
        rtype = crd_resource_type(crd)
        if rtype is None or self.is_builtin(rtype):
            return
        self._register(rtype)
        for version in crd["spec"].get("versions", []):
            key = (rtype.group, rtype.plural, version["name"])
            self._validators.pop(key, None)
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                self._schemas.pop(key, None)
            else:
                self._schemas[key] = schema

    def _unregister_crd(self, crd: dict[str, Any]) -> None:
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        if key in _BUILTIN_KEYS:
            return
        self._types.pop(key, None)
        self._objects.pop(key, None)
        for watch in list(self._watches.pop(key, set())):
            watch.close()
        for schema_key in [k for k in self._schemas if (k[0], k[1]) == key]:
            del self._schemas[schema_key]
            self._validators.pop(schema_key, None)


WatchFilter = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Event:
    """One change recorded in the event history."""

    rv: int
    group: str
    plural: str
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


_CLOSED: tuple[str, dict[str, Any]] = ("", {})
_MAX_PENDING_EVENTS = 10_000


class Watch:
    """Async iterator of (event_type, obj): ADDED/MODIFIED/DELETED/BOOKMARK, or one ERROR
    carrying a Status (410 Expired) when the start resourceVersion is too old; close() stops it."""

    def __init__(
        self,
        rtype: ResourceType,
        matches: WatchFilter,
        *,
        current_rv: Callable[[], int],
        on_close: Callable[[Watch], None],
        allow_bookmarks: bool,
        timeout_seconds: float | None,
        bookmark_interval: float,
    ) -> None:
        self._rtype = rtype
        self._matches = matches
        self._current_rv = current_rv
        self._on_close = on_close
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._closed = False
        now = time.monotonic()
        self._deadline = None if timeout_seconds is None else now + timeout_seconds
        self._bookmark_interval = bookmark_interval
        self._next_bookmark = now + bookmark_interval if allow_bookmarks else None

    def offer(self, event: Event, *, bounded: bool = True) -> None:
        """Queue an event if it concerns this watch (selector transitions become ADDED/DELETED).

        A bounded offer ends a watch whose consumer has fallen too far behind."""
        if self._closed:
            return
        event_type = event.type
        if self._matches(event.obj):
            if event.old is not None and not self._matches(event.old):
                event_type = "ADDED"
        elif event.old is not None and self._matches(event.old):
            event_type = "DELETED"
        else:
            return
        if bounded and self._queue.qsize() >= _MAX_PENDING_EVENTS:
            # As kube-apiserver does with an unresponsive watcher: end the stream, the client
            # lists and watches again.
            self.close()
            return
        self._queue.put_nowait((event_type, event.obj))

    def fail(self, status: dict[str, Any]) -> None:
        """End the watch with an ERROR event carrying a Status."""
        self._queue.put_nowait(("ERROR", status))
        self._closed = True

    def close(self) -> None:
        """Stop the watch; pending events are still delivered, then iteration ends."""
        if not self._closed:
            self._closed = True
            self._on_close(self)
            self._queue.put_nowait(_CLOSED)

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        if self._queue.empty():
            if self._closed:
                raise StopAsyncIteration
            wakeup = min(
                (t for t in (self._deadline, self._next_bookmark) if t is not None), default=None
            )
            try:
                if wakeup is None:
                    item = await self._queue.get()
                else:
                    delay = max(0.0, wakeup - time.monotonic())
                    item = await asyncio.wait_for(self._queue.get(), delay)
            except TimeoutError:
                return self._on_timer()
        else:
            item = self._queue.get_nowait()
        if item is _CLOSED:
            raise StopAsyncIteration
        return item[0], copy.deepcopy(item[1])

    def _on_timer(self) -> tuple[str, dict[str, Any]]:
        now = time.monotonic()
        if self._deadline is not None and now >= self._deadline:
            self.close()
            raise StopAsyncIteration
        self._next_bookmark = now + self._bookmark_interval
        bookmark = {
            "kind": self._rtype.kind,
            "apiVersion": self._rtype.api_version,
            "metadata": {"resourceVersion": str(self._current_rv())},
        }
        return "BOOKMARK", bookmark


def _describe_manager(rtype: ResourceType, manager: ManagerId, time: str | None) -> str:
    name, operation, subresource = manager
    text = f'"{name}"'
    if subresource:
        text += f' with subresource "{subresource}"'
    if operation == "Update":
        text += f" using {rtype.api_version}" + (f" at {time}" if time else "")
    return text


def _apply_conflict(
    rtype: ResourceType, name: str, conflicts: list[tuple[str, patching.FieldPath]]
) -> ApiError:
    if len(conflicts) == 1:
        owner, path = conflicts[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {owner}: {patching.render_path(path)}"
        )
    else:
        by_owner: dict[str, list[str]] = {}
        for owner, path in conflicts:
            by_owner.setdefault(owner, []).append(patching.render_path(path))
        groups = [f"conflicts with {o}:\n- " + "\n- ".join(p) for o, p in by_owner.items()]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(groups)
    details = _resource_details(rtype, name)
    details["causes"] = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {owner}",
            "field": patching.render_path(path),
        }
        for owner, path in conflicts
    ]
    return ApiError(409, "Conflict", message, details)


def _changes_generation(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> bool:
    if new["metadata"].get("deletionTimestamp") != old["metadata"].get("deletionTimestamp"):
        return False
    if rtype.has_status:
        return old.get("spec") != new.get("spec")
    ignored = ("metadata", "status") if rtype.has_status else ("metadata",)
    return {k: v for k, v in old.items() if k not in ignored} != {
        k: v for k, v in new.items() if k not in ignored
    }


def _parse_rv(value: str) -> int:
    if not value.isdigit():
        raise bad_request(f'invalid resource version "{value}"')
    return int(value)


def _encode_continue(rv: int, last: tuple[str, str]) -> str:
    raw = json.dumps({"rv": rv, "start": list(last)}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as error:
        raise bad_request("continue key is not valid: illegal base64 data") from error
