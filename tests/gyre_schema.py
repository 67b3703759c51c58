"""Helpers for tests: the example manifests and validators built from the checked-in CRDs."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from gyre_local.schema.validation import FieldError, SchemaValidator

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
CRDS = REPO / "crds"


def example_manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every document in examples/."""
    out = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path.name, doc))
    return out


def example(kind: str) -> dict[str, Any]:
    """A deep copy of the example object of a kind."""
    return copy.deepcopy(next(obj for _, obj in example_manifests() if obj["kind"] == kind))


@cache
def validator(kind: str) -> SchemaValidator:
    """The validator of the checked-in CRD of a Gyre kind."""
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            return SchemaValidator(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    raise KeyError(kind)


def admission_errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
    """What the API server would refuse in obj: schema and CEL errors after defaulting/pruning."""
    check = validator(obj["kind"])
    prepared_old = check.prepare(old) if old is not None else None
    return check.validate(check.prepare(obj), prepared_old)
