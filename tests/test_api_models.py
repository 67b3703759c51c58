"""The API models: conditions, durations, and agreement with the generated CRD schemas."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from pydantic import ValidationError

from gyre_operator.api import (
    RESOURCES,
    Condition,
    ConditionStatus,
    get_condition,
    is_condition_true,
    parse_duration,
    set_condition,
    to_wire,
)
from gyre_schema import admission_errors

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("2m", 120), ("1h30m", 5400), ("500ms", 0.5), ("1.5h", 5400), ("0s", 0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "2 m", "1d", "m5", "-1s"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_set_condition_adds_then_keeps_transition_time_while_status_holds() -> None:
    conditions = set_condition([], "Ready", False, "Pending", "waiting", now=T0)
    assert conditions[0].last_transition_time == "2026-01-02T03:04:05Z"
    same = set_condition(conditions, "Ready", False, "StillPending", "still", now=T1)
    assert same[0].last_transition_time == "2026-01-02T03:04:05Z"
    assert same[0].reason == "StillPending"
    flipped = set_condition(same, "Ready", True, "Ready", now=T1, observed_generation=3)
    assert flipped[0].last_transition_time == "2026-01-02T03:09:05Z"
    assert flipped[0].observed_generation == 3
    assert is_condition_true(flipped, "Ready")


def test_set_condition_keeps_other_conditions_in_place() -> None:
    conditions = set_condition([], "Ready", True, "Ready", now=T0)
    conditions = set_condition(conditions, "Progressing", True, "CanaryStep", now=T0)
    conditions = set_condition(conditions, "Ready", False, "RolledBack", now=T1)
    assert [c.type for c in conditions] == ["Ready", "Progressing"]
    assert get_condition(conditions, "Missing") is None
    assert not is_condition_true(conditions, "Ready")


def test_condition_refuses_a_non_camel_case_reason() -> None:
    with pytest.raises(ValidationError):
        Condition(
            type="Ready",
            status=ConditionStatus.TRUE,
            reason="not ok",
            last_transition_time="2026-01-02T03:04:05Z",
        )


def test_defaults_are_what_the_design_says() -> None:
    isvc = RESOURCES[3].model_validate(
        {"kind": "InferenceService", "spec": {"model": "m", "track": "latest"}}
    )
    spec = to_wire(isvc)["spec"]
    assert spec["trafficRouting"]["type"] == "replicas"
    assert spec["rollout"]["analysis"]["interval"] == "30s"
    dm = RESOURCES[4].model_validate(
        {"kind": "DriftMonitor", "spec": {"inferenceServiceRef": {"name": "x"}, "interval": "1h"}}
    )
    methods = to_wire(dm)["spec"]["methods"]
    assert methods["numeric"]["psi"] == {"enabled": True, "bins": 10, "threshold": 0.2}
    assert methods["numeric"]["ks"]["pValue"] == 0.05
    assert methods["numeric"]["ks"]["correction"] == "bonferroni"
    assert methods["categorical"]["chiSquared"]["pValue"] == 0.05
    assert methods["categorical"]["jensenShannon"]["threshold"] == 0.1
    assert to_wire(dm)["spec"]["minSamples"] == 500


_EXACTLY_ONE = re.compile(r"^has\(self\.(\w+)\) != has\(self\.(\w+)\)$")
_AT_LEAST_ONE = re.compile(r"^has\(self\.(\w+)\) \|\| has\(self\.(\w+)\)$")


# Free-form objects (hyperparameters) get the values real trainers take: CEL, like the API
# server, cannot hold integers beyond 64 bits.
_HYPERPARAMETER_VALUE = {
    "anyOf": [
        {"type": "string", "maxLength": 20},
        {"type": "boolean"},
        {"type": "integer", "minimum": -(2**31), "maximum": 2**31},
        {"type": "number", "minimum": -1e9, "maximum": 1e9},
    ]
}


def _generation_schema(node: Any) -> Any:
    """The model's JSON Schema shaped for generating wire objects.

    Optional fields are left out rather than set to null (as Kubernetes clients send them), and
    CEL presence rules are also spelled as oneOf/anyOf of required, so that most generated
    objects satisfy them; the CEL rules themselves are still what the admission check evaluates.
    """
    if isinstance(node, list):
        return [_generation_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    branches = node.get("anyOf", [])
    if len(branches) == 2 and {"type": "null"} in branches:
        (kept,) = [b for b in branches if b != {"type": "null"}]
        node = {**{k: v for k, v in node.items() if k not in ("anyOf", "default")}, **kept}
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return {"type": "object", "additionalProperties": _HYPERPARAMETER_VALUE}
    out = {k: _generation_schema(v) for k, v in node.items()}
    for rule in node.get("x-kubernetes-validations", []):
        if match := _EXACTLY_ONE.match(rule["rule"]):
            out["oneOf"] = [{"required": [name]} for name in match.groups()]
        elif match := _AT_LEAST_ONE.match(rule["rule"]):
            out["anyOf"] = [{"required": [name]} for name in match.groups()]
    return out


def _spec_strategy(resource: Any) -> st.SearchStrategy[dict[str, Any]]:
    schema = _generation_schema(resource.model_json_schema(by_alias=True))
    spec_schema = {**schema["properties"]["spec"], "$defs": schema["$defs"]}
    return from_schema(spec_schema)


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.info.kind)
def test_generated_objects_are_admitted_and_round_trip(resource: Any) -> None:
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(spec=_spec_strategy(resource))
    def check(spec: dict[str, Any]) -> None:
        try:
            model = resource.model_validate({"kind": resource.info.kind, "spec": spec})
        except ValidationError:
            reject()
        wire = to_wire(model)
        wire["metadata"] = {"name": "generated", "namespace": "default"}
        assert admission_errors(wire) == [], wire
        assert resource.model_validate(wire).spec == model.spec

    check()
