"""Every example manifest is admitted by the generated CRDs and parsed by the API models."""

from __future__ import annotations

from typing import Any

import pytest

from gyre_operator.api import RESOURCES, to_wire
from gyre_schema import admission_errors, example_manifests

MODELS = {r.info.kind: r for r in RESOURCES}
EXAMPLES = example_manifests()


def test_examples_cover_every_kind() -> None:
    assert {obj["kind"] for _, obj in EXAMPLES} == set(MODELS)


@pytest.mark.parametrize(("name", "obj"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_is_admitted_by_the_crd(name: str, obj: dict[str, Any]) -> None:
    assert admission_errors(obj) == []


@pytest.mark.parametrize(("name", "obj"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_parses_and_round_trips(name: str, obj: dict[str, Any]) -> None:
    model = MODELS[obj["kind"]].model_validate(obj)
    again = MODELS[obj["kind"]].model_validate(to_wire(model))
    assert again == model
    assert missing_or_changed(obj["spec"], to_wire(model)["spec"]) == []


def missing_or_changed(original: Any, wire: Any, path: str = "spec") -> list[str]:
    """Paths of values the user wrote that the model's wire form lost or altered."""
    if isinstance(original, dict) and isinstance(wire, dict):
        return [
            p
            for key, value in original.items()
            for p in (
                missing_or_changed(value, wire[key], f"{path}.{key}")
                if key in wire
                else [f"{path}.{key}"]
            )
        ]
    if isinstance(original, list) and isinstance(wire, list) and len(original) == len(wire):
        return [
            p
            for i, (a, b) in enumerate(zip(original, wire, strict=True))
            for p in missing_or_changed(a, b, f"{path}[{i}]")
        ]
    return [] if original == wire else [path]
