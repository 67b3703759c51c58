"""Patch formats of the Kubernetes API: JSON merge, JSON patch, strategic merge, apply."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gyre_local.jsoncopy import json_copy

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)


class PatchError(ValueError):
    """A patch that is malformed (HTTP 400)."""


class PatchNotApplicable(ValueError):
    """A well-formed patch that cannot be applied to the object (HTTP 422)."""


# ---- JSON merge patch (RFC 7386) ----


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch to a document, returning a new document."""
    if not isinstance(patch, dict):
        return json_copy(patch)
    result = json_copy(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(result: dict[str, Any], patch: dict[str, Any]) -> None:
    """Merge a patch into a document of this call's own (copied once, not at every level)."""
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            if not isinstance(current, dict):
                current = result[key] = {}
            _merge_into(current, value)
        else:
            result[key] = json_copy(value)


# ---- JSON patch (RFC 6902) ----


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, for_insert: bool) -> int:
    if token == "-" and for_insert:
        return len(container)
    if not token.isdigit():
        raise PatchNotApplicable(f"invalid array index {token!r} in {path}")
    index = int(token)
    if index > len(container) or (index == len(container) and not for_insert):
        raise PatchNotApplicable(f"array index {index} out of bounds in {path}")
    return index


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    current = doc
    for token in tokens[:-1]:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, path, for_insert=False)]
        else:
            raise PatchNotApplicable(f"doc is missing path: {path}")
    return current


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict) and tokens[-1] in parent:
        return parent[tokens[-1]]
    if isinstance(parent, list):
        return parent[_index(parent, tokens[-1], path, for_insert=False)]
    raise PatchNotApplicable(f"doc is missing path: {path}")


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise PatchNotApplicable("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict) and tokens[-1] in parent:
        return parent.pop(tokens[-1])
    if isinstance(parent, list):
        return parent.pop(_index(parent, tokens[-1], path, for_insert=False))
    raise PatchNotApplicable(f"doc is missing path: {path}")


def _add(doc: Any, path: str, value: Any, *, replace: bool) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        if replace and tokens[-1] not in parent:
            raise PatchNotApplicable(f"doc is missing key: {path}")
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        index = _index(parent, tokens[-1], path, for_insert=not replace)
        if replace:
            parent[index] = value
        else:
            parent.insert(index, value)
    else:
        raise PatchNotApplicable(f"doc is missing path: {path}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch, returning a new document."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations")
    doc = json_copy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid json patch operation: {operation!r}")
        op, path = operation["op"], operation["path"]
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"json patch {op} operation requires a value")
        if op == "add":
            doc = _add(doc, path, json_copy(operation["value"]), replace=False)
        elif op == "replace":
            doc = _add(doc, path, json_copy(operation["value"]), replace=True)
        elif op == "remove":
            _remove(doc, path)
        elif op in ("move", "copy"):
            source = operation.get("from")
            if source is None:
                raise PatchError(f"json patch {op} operation requires 'from'")
            value = _remove(doc, source) if op == "move" else json_copy(_get(doc, source))
            doc = _add(doc, path, value, replace=False)
        elif op == "test":
            if _get(doc, path) != operation["value"]:
                raise PatchNotApplicable(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"unexpected json patch operation {op!r}")
    return doc


# ---- patch strategies for built-in kinds ----

Path = tuple[str, ...]


@dataclass(frozen=True)
class Strategy:
    """How lists of one kind merge: keyed lists (path -> merge key) and set-like lists."""

    merge_keys: Mapping[Path, str] = field(default_factory=dict)
    set_lists: frozenset[Path] = frozenset()


def _pod_spec_keys(prefix: Path) -> dict[Path, str]:
    keys: dict[Path, str] = {
        (*prefix, "volumes"): "name",
        (*prefix, "imagePullSecrets"): "name",
        (*prefix, "hostAliases"): "ip",
    }
    for containers in ("containers", "initContainers", "ephemeralContainers"):
        base = (*prefix, containers)
        keys[base] = "name"
        keys[(*base, "env")] = "name"
        keys[(*base, "ports")] = "containerPort"
        keys[(*base, "volumeMounts")] = "mountPath"
        keys[(*base, "volumeDevices")] = "devicePath"
        keys[(*base, "resizePolicy")] = "resourceName"
    return keys


_COMMON_KEYS: dict[Path, str] = {
    ("metadata", "ownerReferences"): "uid",
    ("status", "conditions"): "type",
}
_POD_SPEC_PREFIX: dict[str, Path] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_EXTRA_KEYS: dict[str, dict[Path, str]] = {
    "Service": {("spec", "ports"): "port"},
    "Pod": {("status", "containerStatuses"): "name", ("status", "initContainerStatuses"): "name"},
}
_SET_LISTS = frozenset({("metadata", "finalizers")})


def strategy_for(kind: str, *, builtin: bool) -> Strategy:
    """The list-merge strategy of a kind (custom resources merge lists atomically)."""
    if not builtin:
        return Strategy()
    keys = dict(_COMMON_KEYS)
    if kind in _POD_SPEC_PREFIX:
        keys.update(_pod_spec_keys(_POD_SPEC_PREFIX[kind]))
    keys.update(_EXTRA_KEYS.get(kind, {}))
    return Strategy(keys, _SET_LISTS)


# ---- strategic merge patch ----


def strategic_merge(target: Any, patch: Any, strategy: Strategy, path: Path = ()) -> Any:
    """Apply a strategic merge patch (with $patch/$retainKeys directives), returning a new doc."""
    if not isinstance(patch, dict):
        return json_copy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: json_copy(v) for k, v in patch.items() if k != "$patch"}
    result = json_copy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        child = (*path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, strategy, child)
        else:
            merged = strategic_merge(result.get(key), value, strategy, child)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name, []) if v not in value]
    if isinstance(patch.get("$retainKeys"), list):
        retained = set(patch["$retainKeys"])
        result = {k: v for k, v in result.items() if k in retained}
    return result


def _merge_list(live: Any, patch: list[Any], strategy: Strategy, path: Path) -> list[Any]:
    current = list(json_copy(live)) if isinstance(live, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [json_copy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if path in strategy.set_lists:
        return current + [json_copy(v) for v in patch if v not in current]
    key = strategy.merge_keys.get(path)
    if key is None:
        return json_copy(patch)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchNotApplicable(f"list item at {'.'.join(path)} is missing merge key {key}")
        position = next(
            (i for i, e in enumerate(current) if isinstance(e, dict) and e.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                current.pop(position)
        elif position is None:
            current.append(strategic_merge({}, item, strategy, path))
        else:
            current[position] = strategic_merge(current[position], item, strategy, path)
    return current


# ---- server-side apply: field ownership ----

# A field path: map keys as strings, keyed list items as (merge key, key value).
FieldPath = tuple[Any, ...]
_SERVER_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    }
)


_MISSING = object()
_TOP_LEVEL_SKIPPED = frozenset({"apiVersion", "kind"})
_NOTHING_SKIPPED: frozenset[str] = frozenset()


def _skipped(path: FieldPath) -> frozenset[str]:
    """The keys of a map at a path that are not fields anyone owns."""
    if not path:
        return _TOP_LEVEL_SKIPPED
    if path == ("metadata",):
        return _SERVER_METADATA
    return _NOTHING_SKIPPED


# The walks below carry along the schema path of a field path (its map keys alone, the path
# Strategy.merge_keys is keyed by) rather than deriving it from the field path at every step.


def _collect(
    value: Any, keys: Mapping[Path, str], path: FieldPath, schema: Path, out: set[FieldPath]
) -> None:
    if isinstance(value, dict) and value:
        skipped = _skipped(path)
        for key, child in value.items():
            if key not in skipped:
                child_schema = (*schema, key) if isinstance(key, str) else schema
                _collect(child, keys, (*path, key), child_schema, out)
        return
    merge_key = keys.get(schema) if keys else None
    if isinstance(value, list) and merge_key is not None:
        for item in value:
            if isinstance(item, dict) and merge_key in item:
                item_path = (*path, (merge_key, item[merge_key]))
                out.add(item_path)
                _collect(item, keys, item_path, schema, out)
        return
    if path:
        out.add(path)


def field_paths(obj: Any, strategy: Strategy) -> set[FieldPath]:
    """Every field path set in an object (leaves, plus keyed list items)."""
    out: set[FieldPath] = set()
    _collect(obj, strategy.merge_keys, (), (), out)
    return out


def changed_paths(old: Any, new: Any, strategy: Strategy) -> tuple[set[FieldPath], set[FieldPath]]:
    """The field paths of either object whose values differ between them, and those of them
    that are set in `new`: `{p for p in field_paths(old) | field_paths(new) if value_at(old, p)
    != value_at(new, p)}` and its intersection with `field_paths(new)`.

    Rather than walking both objects whole, the walk descends only where they differ: below a
    path whose values are equal (or the same object, as unchanged subtrees shared between
    states are) every value is equal too. (The one difference: a NaN, never equal to itself,
    counts as changed by the formula even when untouched, not here.)
    """
    changed: set[FieldPath] = set()
    present: set[FieldPath] = set()
    _diff(old, new, strategy.merge_keys, (), (), changed, present)
    return changed, present


def _is_leaf(value: Any, merge_key: str | None) -> bool:
    """Whether the walk of field paths yields a value's own path (not paths below it)."""
    if value is _MISSING:
        return False
    if isinstance(value, dict):
        return not value
    return not (isinstance(value, list) and merge_key is not None)


def _diff(
    old: Any,
    new: Any,
    keys: Mapping[Path, str],
    path: FieldPath,
    schema: Path,
    changed: set[FieldPath],
    present: set[FieldPath],
) -> None:
    """Add the changed paths at and below `path`, where `old` and `new` are value_at(path) of
    each object and the only values the field-path walk visits at that path."""
    if old is new or (old is not _MISSING and new is not _MISSING and old == new):
        return
    merge_key = keys.get(schema) if keys else None
    new_leaf = _is_leaf(new, merge_key)
    if path and (new_leaf or _is_leaf(old, merge_key)):
        changed.add(path)
        if new_leaf:
            present.add(path)
    old_map = isinstance(old, dict) and bool(old)
    new_map = isinstance(new, dict) and bool(new)
    if old_map or new_map:
        skipped = _skipped(path)
        names = list(old) if old_map else []
        if new_map:
            names += [key for key in new if not (old_map and key in old)]
        for key in names:
            if key in skipped:
                continue
            child_schema = (*schema, key) if isinstance(key, str) else schema
            _diff(
                _step(old, key), _step(new, key), keys, (*path, key), child_schema, changed, present
            )
    if merge_key is not None and (isinstance(old, list) or isinstance(new, list)):
        _diff_items(old, new, keys, merge_key, path, schema, changed, present)


def _diff_items(
    old: Any,
    new: Any,
    keys: Mapping[Path, str],
    merge_key: str,
    path: FieldPath,
    schema: Path,
    changed: set[FieldPath],
    present: set[FieldPath],
) -> None:
    """The changed paths of the items of keyed lists (on either side) at `path`."""
    # The items each item path is walked from, in old and in new (more than one when keys repeat).
    items: dict[tuple[str, Any], tuple[list[Any], list[Any]]] = {}
    for side, values in ((0, old), (1, new)):
        if isinstance(values, list):
            for item in values:
                if isinstance(item, dict) and merge_key in item:
                    element = (merge_key, item[merge_key])
                    items.setdefault(element, ([], []))[side].append(item)
    for element, (old_items, new_items) in items.items():
        item_path = (*path, element)
        old_item, new_item = _step(old, element), _step(new, element)
        if old_item is new_item or (
            old_item is not _MISSING and new_item is not _MISSING and old_item == new_item
        ):
            continue
        changed.add(item_path)
        if new_items:
            present.add(item_path)
        if _walked_alone(old_items, old_item) and _walked_alone(new_items, new_item):
            _diff(old_item, new_item, keys, item_path, schema, changed, present)
            continue
        # Repeated keys: the walk visits every item, value_at finds the first one. Compare
        # every path found below each of them by value, as the definition does.
        old_paths: set[FieldPath] = set()
        new_paths: set[FieldPath] = set()
        for item in old_items:
            _collect(item, keys, item_path, schema, old_paths)
        for item in new_items:
            _collect(item, keys, item_path, schema, new_paths)
        depth = len(item_path)
        for found in old_paths | new_paths:
            if value_at(old_item, found[depth:]) != value_at(new_item, found[depth:]):
                changed.add(found)
                if found in new_paths:
                    present.add(found)


def _walked_alone(walked: list[Any], found: Any) -> bool:
    """Whether the item value_at finds is the only one the walk visits under its path."""
    return (len(walked) == 1 and walked[0] is found) or (not walked and found is _MISSING)


def is_item_path(path: FieldPath) -> bool:
    """Whether a path names a keyed list item rather than a leaf value."""
    return bool(path) and isinstance(path[-1], tuple)


def is_item_key(path: FieldPath) -> bool:
    """Whether a path names the merge key field of a keyed list item."""
    return len(path) >= 2 and isinstance(path[-2], tuple) and path[-2][0] == path[-1]


def _step(container: Any, element: Any) -> Any:
    if isinstance(element, tuple):
        if not isinstance(container, list):
            return _MISSING
        return next((i for i in container if _is_item(i, element)), _MISSING)
    return container.get(element, _MISSING) if isinstance(container, dict) else _MISSING


def _is_item(value: Any, element: tuple[str, Any]) -> bool:
    return isinstance(value, dict) and value.get(element[0]) == element[1]


def value_at(obj: Any, path: FieldPath) -> Any:
    """The value at a field path, or a sentinel distinct from every value when absent."""
    current = obj
    for element in path:
        current = _step(current, element)
        if current is _MISSING:
            return _MISSING
    return current


def remove_path(obj: Any, path: FieldPath) -> None:
    """Remove the value at a field path in place, pruning maps it leaves empty."""
    parents = [obj]
    for element in path[:-1]:
        nxt = _step(parents[-1], element)
        if nxt is _MISSING:
            return
        parents.append(nxt)
    last = path[-1]
    container = parents[-1]
    if isinstance(last, tuple) and isinstance(container, list):
        container[:] = [i for i in container if not _is_item(i, last)]
    elif isinstance(container, dict):
        container.pop(last, None)
    for depth in range(len(parents) - 1, 0, -1):
        if parents[depth] in ({}, []) and isinstance(parents[depth - 1], dict):
            parents[depth - 1].pop(path[depth - 1], None)
        else:
            break


def apply_merge(live: Any, applied: Any, strategy: Strategy, path: Path = ()) -> Any:
    """Merge an applied configuration into a live object (keyed lists merge by key)."""
    if not isinstance(applied, dict) or not isinstance(live, dict):
        if isinstance(applied, list) and isinstance(live, list):
            key = strategy.merge_keys.get(path)
            if key is not None:
                return _apply_list(live, applied, key, strategy, path)
        return json_copy(applied)
    result = json_copy(live)
    for name, value in applied.items():
        if value is None:
            continue
        result[name] = apply_merge(result.get(name), value, strategy, (*path, name))
    return result


def _apply_list(
    live: list[Any], applied: list[Any], key: str, strategy: Strategy, path: Path
) -> list[Any]:
    result = json_copy(live)
    for item in applied:
        if not isinstance(item, dict) or key not in item:
            result.append(json_copy(item))
            continue
        position = next(
            (i for i, e in enumerate(result) if isinstance(e, dict) and e.get(key) == item[key]),
            None,
        )
        if position is None:
            result.append(json_copy(item))
        else:
            result[position] = apply_merge(result[position], item, strategy, path)
    return result


def render_path(path: FieldPath) -> str:
    """A field path in the notation Kubernetes uses in apply conflicts."""
    text = ""
    for element in path:
        if isinstance(element, tuple):
            text += f"[{element[0]}={json.dumps(element[1])}]"
        else:
            text += f".{element}"
    return text
