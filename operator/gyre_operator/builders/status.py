"""Status helpers shared by the builders: the Ready condition and timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from gyre_operator.api import Condition, get_condition, set_condition, to_wire
from gyre_operator.builders.plan import WARNING, EventRecord, Plan

READY = "Ready"
INVALID_SPEC = "InvalidSpec"


def with_ready(
    conditions: list[Condition],
    ready: bool,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """The conditions with Ready set (metav1 semantics: the time moves only on a change)."""
    return set_condition(
        conditions, READY, ready, reason, message, observed_generation=generation, now=now
    )


def ready_reason(conditions: list[Condition]) -> str | None:
    """The reason of the Ready condition, if there is one."""
    found = get_condition(conditions, READY)
    return found.reason if found is not None else None


def generation_of(obj: dict[str, Any]) -> int | None:
    """metadata.generation of an object."""
    value = (obj.get("metadata") or {}).get("generation")
    return int(value) if value is not None else None


def validation_message(error: ValidationError) -> str:
    """A one-line account of a pydantic validation error: where, then what."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}"


def invalid_spec_plan(obj: dict[str, Any], message: str, now: datetime) -> Plan:
    """Ready=False with reason InvalidSpec for an object the operator cannot act on."""
    status = dict(obj.get("status") or {})
    try:
        conditions = [Condition.model_validate(c) for c in status.get("conditions") or []]
    except ValidationError:
        conditions = []
    generation = generation_of(obj)
    updated = with_ready(conditions, False, INVALID_SPEC, message, generation=generation, now=now)
    status["conditions"] = [to_wire(c) for c in updated]
    status["observedGeneration"] = generation
    events: tuple[EventRecord, ...] = ()
    if ready_reason(conditions) != INVALID_SPEC:
        events = (EventRecord(WARNING, INVALID_SPEC, message),)
    return Plan(status=status, events=events)
