"""Patch formats of the Kubernetes API: JSON merge, JSON patch, strategic merge, apply."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

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
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


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
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid json patch operation: {operation!r}")
        op, path = operation["op"], operation["path"]
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"json patch {op} operation requires a value")
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(operation["value"]), replace=False)
        elif op == "replace":
            doc = _add(doc, path, copy.deepcopy(operation["value"]), replace=True)
        elif op == "remove":
            _remove(doc, path)
        elif op in ("move", "copy"):
            source = operation.get("from")
            if source is None:
                raise PatchError(f"json patch {op} operation requires 'from'")
            value = _remove(doc, source) if op == "move" else copy.deepcopy(_get(doc, source))
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
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
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
    current = list(copy.deepcopy(live)) if isinstance(live, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if path in strategy.set_lists:
        return current + [copy.deepcopy(v) for v in patch if v not in current]
    key = strategy.merge_keys.get(path)
    if key is None:
        return copy.deepcopy(patch)
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


def _schema_path(path: FieldPath) -> Path:
    return tuple(p for p in path if isinstance(p, str))


def _walk(value: Any, strategy: Strategy, path: FieldPath) -> Iterator[FieldPath]:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            if path == () and key in ("apiVersion", "kind"):
                continue
            if path == ("metadata",) and key in _SERVER_METADATA:
                continue
            yield from _walk(child, strategy, (*path, key))
        return
    merge_key = strategy.merge_keys.get(_schema_path(path))
    if isinstance(value, list) and merge_key is not None:
        for item in value:
            if isinstance(item, dict) and merge_key in item:
                item_path = (*path, (merge_key, item[merge_key]))
                yield item_path
                yield from _walk(item, strategy, item_path)
        return
    if path:
        yield path


def field_paths(obj: Any, strategy: Strategy) -> set[FieldPath]:
    """Every field path set in an object (leaves, plus keyed list items)."""
    return set(_walk(obj, strategy, ()))


def is_item_path(path: FieldPath) -> bool:
    """Whether a path names a keyed list item rather than a leaf value."""
    return bool(path) and isinstance(path[-1], tuple)


def is_item_key(path: FieldPath) -> bool:
    """Whether a path names the merge key field of a keyed list item."""
    return len(path) >= 2 and isinstance(path[-2], tuple) and path[-2][0] == path[-1]


_MISSING = object()


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
        return copy.deepcopy(applied)
    result = copy.deepcopy(live)
    for name, value in applied.items():
        if value is None:
            continue
        result[name] = apply_merge(result.get(name), value, strategy, (*path, name))
    return result


def _apply_list(
    live: list[Any], applied: list[Any], key: str, strategy: Strategy, path: Path
) -> list[Any]:
    result = copy.deepcopy(live)
    for item in applied:
        if not isinstance(item, dict) or key not in item:
            result.append(copy.deepcopy(item))
            continue
        position = next(
            (i for i, e in enumerate(result) if isinstance(e, dict) and e.get(key) == item[key]),
            None,
        )
        if position is None:
            result.append(copy.deepcopy(item))
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
