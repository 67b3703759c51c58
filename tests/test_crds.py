"""The checked-in CRDs are exactly what the API models generate, and are structural."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gyre_operator.api import RESOURCES
from gyre_operator.crdgen import CRD_DIRS, REGENERATE_COMMAND, build_crd, render_crds, write_crds

FORBIDDEN_SCHEMA_KEYS = {"$ref", "$defs", "title", "anyOf", "oneOf", "allOf", "const"}


def walk_schema(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    if not isinstance(node, dict):
        return
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from walk_schema(prop, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk_schema(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk_schema(node["additionalProperties"], f"{path}{{}}")


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("directory", CRD_DIRS, ids=str)
def test_checked_in_crds_match_the_api_models(directory: Path) -> None:
    directory = REPO / directory
    expected = render_crds()
    present = {p.name: p.read_text() for p in directory.glob("*.yaml")}
    stale = sorted(name for name in expected if present.get(name) != expected[name])
    extra = sorted(set(present) - set(expected))
    assert not stale and not extra, (
        f"{directory} is out of date with gyre_operator.api (differs: {stale}, unexpected: "
        f"{extra}). Run `{REGENERATE_COMMAND}` and commit the result."
    )


def test_generation_is_idempotent(tmp_path: Path) -> None:
    first = {p.name: p.read_text() for p in write_crds((tmp_path,))}
    second = {p.name: p.read_text() for p in write_crds((tmp_path,))}
    assert first == second
    assert len(first) == len(RESOURCES)


def test_gyre_crds_command_writes_to_output(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gyre_operator.cli", "crds", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(render_crds())
    assert str(tmp_path) in result.stdout


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.info.kind)
def test_schema_is_structural_and_described(resource: Any) -> None:
    crd = build_crd(resource)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    undescribed = []
    for path, node in walk_schema(schema):
        assert not FORBIDDEN_SCHEMA_KEYS & node.keys(), (
            f"{path} has {FORBIDDEN_SCHEMA_KEYS & node.keys()}"
        )
        if "properties" in node:
            assert "additionalProperties" not in node, (
                f"{path} mixes properties/additionalProperties"
            )
        is_int_or_string = node.get("x-kubernetes-int-or-string")
        assert "type" in node or is_int_or_string, f"{path} has no type"
        nested_field = path.count(".") >= 2 and not path.endswith(("[]", "{}"))
        if nested_field and not node.get("description"):
            undescribed.append(path)
    assert not undescribed, f"fields without a description for kubectl explain: {undescribed}"


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.info.kind)
def test_names_columns_and_subresources(resource: Any) -> None:
    crd = build_crd(resource)
    names = crd["spec"]["names"]
    assert names["categories"] == ["gyre"]
    assert names["shortNames"] and names["kind"] == resource.info.kind
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    assert {c["name"] for c in columns} >= {"Age"}
    assert all("conditions" not in c["jsonPath"] for c in columns)
    assert crd["metadata"]["name"] == f"{names['plural']}.gyre.dev"


def test_short_names_match_the_design() -> None:
    short = {r.info.kind: r.info.short_names for r in RESOURCES}
    assert short == {
        "Dataset": ("gds",),
        "TrainingRun": ("gtr",),
        "ModelVersion": ("gmv",),
        "InferenceService": ("gisvc",),
        "DriftMonitor": ("gdm",),
    }


def test_crd_files_are_valid_yaml_documents() -> None:
    for text in render_crds().values():
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"
