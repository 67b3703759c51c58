"""CustomResourceDefinitions generated from the API models (api/ is the single source of truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gyre_operator.api import GROUP, RESOURCES, VERSION, GyreResource

# Where `gyre crds` writes, relative to the root of a checkout.
CRD_DIRS = (Path("crds"), Path("charts") / "gyre" / "crds")
REGENERATE_COMMAND = "gyre crds"

# JSON Schema keywords that a structural OpenAPI v3 schema in a CRD does not carry.
_DROPPED_KEYS = {"title", "$defs", "examples", "discriminator"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """A copy of a JSON Schema node with every $ref inlined."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _resolve(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        siblings = {k: _resolve(v, defs) for k, v in node.items() if k != "$ref"}
        return {**target, **siblings}
    return {k: _resolve(v, defs) for k, v in node.items()}


def _nullable_branch(node: dict[str, Any]) -> dict[str, Any] | None:
    """For an anyOf of one type and null, that type marked nullable; otherwise None."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2:
        return None
    non_null = [b for b in branches if b.get("type") != "null"]
    if len(non_null) != 1:
        return None
    outer = {k: v for k, v in node.items() if k != "anyOf"}
    return {**non_null[0], **outer, "nullable": True}


def to_structural(node: Any) -> Any:
    """A pydantic JSON Schema node (refs already inlined) as a structural CRD schema node."""
    if isinstance(node, list):
        return [to_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    merged = _nullable_branch(node)
    if merged is not None:
        return to_structural(merged)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "default" and value is None):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "additionalProperties" and isinstance(value, bool):
            # additionalProperties: false is implied by properties (unknown fields are pruned);
            # true becomes the Kubernetes spelling of a free-form object.
            if value and "properties" not in node:
                out["x-kubernetes-preserve-unknown-fields"] = True
        elif key == "properties":
            out[key] = {name: to_structural(prop) for name, prop in value.items()}
        else:
            out[key] = to_structural(value)
    if out.get("default") == [] or out.get("default") == {}:
        del out["default"]
    return out


def build_schema(resource: type[GyreResource]) -> dict[str, Any]:
    """The openAPIV3Schema of a kind."""
    raw = resource.model_json_schema(by_alias=True)
    resolved = _resolve({k: v for k, v in raw.items() if k != "$defs"}, raw.get("$defs", {}))
    properties = resolved["properties"]
    return {
        "type": "object",
        "description": resource.info.description,
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion defines the versioned schema of this representation "
                "of an object.",
            },
            "kind": {
                "type": "string",
                "description": "Kind is a string value representing the REST resource this "
                "object represents.",
            },
            "metadata": {"type": "object"},
            "spec": to_structural(properties["spec"]),
            "status": to_structural(properties["status"]),
        },
        "required": ["spec"],
    }


def build_crd(resource: type[GyreResource]) -> dict[str, Any]:
    """The CustomResourceDefinition of a kind."""
    info = resource.info
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "gyre"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": list(info.categories),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.to_schema() for c in info.printer_columns],
                    "schema": {"openAPIV3Schema": build_schema(resource)},
                }
            ],
        },
    }


def render_crds() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    header = f"# Generated from gyre_operator.api by `{REGENERATE_COMMAND}`; do not edit.\n"
    return {
        f"{r.info.plural}.{GROUP}.yaml": header
        + yaml.safe_dump(build_crd(r), sort_keys=True, width=100, allow_unicode=True)
        for r in RESOURCES
    }


def write_crds(directories: tuple[Path, ...]) -> list[Path]:
    """Write every CRD into each directory, removing stale generated files; returns the paths."""
    rendered = render_crds()
    written = []
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(f"*.{GROUP}.yaml"):
            if stale.name not in rendered:
                stale.unlink()
        for name, text in rendered.items():
            path = directory / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
            written.append(path)
    return written
