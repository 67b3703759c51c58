"""Server-side apply bookkeeping: which field manager owns which fields of a stored object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gyre_local.clock import now_rfc3339
from gyre_local.store import patching
from gyre_local.store.builtins import ResourceType
from gyre_local.store.errors import ApiError, resource_details

_SYSTEM_MANAGER = "kube-apiserver"

# A field manager as server-side apply tells them apart: (name, operation, subresource).
ManagerId = tuple[str, str, str]


def manager_id(name: str | None, applied: bool, subresource: str | None) -> ManagerId:
    """The identity of a manager writing with apply (or an update) through a subresource."""
    return (name or _SYSTEM_MANAGER, "Apply" if applied else "Update", subresource or "")


@dataclass
class Entry:
    """A stored object with the fields each manager owns and when each last wrote."""

    obj: dict[str, Any]
    managers: dict[ManagerId, set[patching.FieldPath]] = field(default_factory=dict)
    times: dict[ManagerId, str] = field(default_factory=dict)


def record_ownership(
    entry: Entry,
    old: dict[str, Any],
    new: dict[str, Any],
    manager: ManagerId,
    applied_paths: set[patching.FieldPath] | None,
    strategy: patching.Strategy,
) -> None:
    """Give `manager` the fields it applied (or changed); others lose the fields it changed."""
    changed, changed_in_new = patching.changed_paths(old, new, strategy)
    for owner, owned in entry.managers.items():
        if owner != manager:
            owned -= changed
    if applied_paths is not None:
        entry.managers[manager] = set(applied_paths)
    else:
        entry.managers.setdefault(manager, set()).update(changed_in_new)
    entry.times[manager] = now_rfc3339()
    for owner in [m for m, owned in entry.managers.items() if not owned]:
        del entry.managers[owner]
        entry.times.pop(owner, None)


def apply_merge(
    rtype: ResourceType,
    entry: Entry,
    applied: dict[str, Any],
    paths: set[patching.FieldPath],
    applier: ManagerId,
    strategy: patching.Strategy,
    *,
    force: bool,
) -> dict[str, Any]:
    """The live object with an apply configuration merged in and the fields the applier no
    longer applies (and nobody else owns) removed; raises Conflict unless forced."""
    live = entry.obj
    name = live["metadata"]["name"]
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
    new: dict[str, Any] = patching.apply_merge(live, applied, strategy)
    others = set().union(*(owned for owner, owned in entry.managers.items() if owner != applier))
    if force:
        others -= paths
    dropped = entry.managers.get(applier, set()) - paths
    for path in sorted(dropped, key=len, reverse=True):
        if patching.is_item_key(path):
            continue  # the item itself goes with its item path, found by this key
        if not any(other[: len(path)] == path for other in others):
            patching.remove_path(new, path)
    return new


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
    details = resource_details(rtype, name)
    details["causes"] = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {owner}",
            "field": patching.render_path(path),
        }
        for owner, path in conflicts
    ]
    return ApiError(409, "Conflict", message, details)
