"""Custom resource schemas: pruning, defaulting and validation of custom objects."""

from __future__ import annotations

from typing import Any

from gyre_local.store import patching
from gyre_local.store.builtins import ResourceType
from gyre_local.store.errors import Causes, bad_request
from gyre_local.store.rules import with_status_of

try:
    from gyre_local.schema.validation import SchemaValidator
except ImportError as error:
    # A missing validator must never silently let every custom object through.
    raise ImportError(
        f"the local cluster validates custom resources with {error.name or 'a module'} "
        "that is not installed; install the local extra: pip install 'gyre-operator[local]'",
        name=error.name,
    ) from error

SchemaKey = tuple[str, str, str]  # group, plural, version
_STATUS_WRITE_FIELDS = frozenset({"apiVersion", "kind", "metadata", "status"})


class CustomResourceSchemas:
    """The openAPIV3Schema of each custom resource version and the validators built from them."""

    def __init__(self) -> None:
        self._schemas: dict[SchemaKey, dict[str, Any]] = {}
        self._validators: dict[SchemaKey, SchemaValidator] = {}

    def schema(self, rtype: ResourceType, version: str) -> dict[str, Any] | None:
        """The openAPIV3Schema of a custom resource version, if it has one."""
        return self._schemas.get((rtype.group, rtype.plural, version))

    def register(self, rtype: ResourceType, crd: dict[str, Any]) -> None:
        """Take the schemas of every version a CRD defines for a resource type."""
        for version in crd["spec"].get("versions", []):
            key = (rtype.group, rtype.plural, version["name"])
            self._validators.pop(key, None)
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                self._schemas.pop(key, None)
            else:
                self._schemas[key] = schema

    def unregister(self, group: str, plural: str) -> None:
        """Forget every version's schema of a resource type."""
        for schema_key in [k for k in self._schemas if (k[0], k[1]) == (group, plural)]:
            del self._schemas[schema_key]
            self._validators.pop(schema_key, None)

    def prepare(
        self,
        rtype: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        subresource: str | None,
        strict: bool,
    ) -> dict[str, Any]:
        """The object pruned and defaulted by its schema (only its status when written through
        the status subresource); strict raises BadRequest on fields the schema does not know."""
        validator = self._validator(rtype, obj)
        if validator is None:
            return obj
        status_only = subresource == "status" and old is not None
        if status_only:
            # Pruning and defaulting treat each field on its own, and all but the status is
            # the stored object's (prepared when it was written): only the status is new.
            obj = {k: v for k, v in obj.items() if k in _STATUS_WRITE_FIELDS}
        prepared: dict[str, Any] = validator.prepare(obj)
        if strict:
            _reject_unknown_fields(rtype, obj, prepared)
        if status_only:
            assert old is not None
            result = with_status_of(old, prepared)
            result["metadata"] = obj["metadata"]
            return result
        prepared["metadata"] = obj["metadata"]
        return prepared

    def causes(
        self,
        rtype: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        subresource: str | None,
    ) -> Causes:
        """The schema violations of an object (of its status alone through that subresource)."""
        validator = self._validator(rtype, obj)
        if validator is None:
            return []
        return [
            (error.type, error.field, error.message)
            for error in validator.validate(obj, old)
            if subresource != "status"
            or error.field == "status"
            or error.field.startswith("status.")
        ]

    def _validator(self, rtype: ResourceType, obj: dict[str, Any]) -> SchemaValidator | None:
        version = str(obj.get("apiVersion", "")).rpartition("/")[2]
        if version not in rtype.versions:
            version = rtype.version
        key = (rtype.group, rtype.plural, version)
        schema = self._schemas.get(key)
        if schema is None:
            return None
        if key not in self._validators:
            self._validators[key] = SchemaValidator(schema)
        return self._validators[key]


def _reject_unknown_fields(
    rtype: ResourceType, given: dict[str, Any], prepared: dict[str, Any]
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
