"""The envelope shared by the five kinds and the CRD facts each kind declares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, JsonValue

from gyre_operator.api.common import API_VERSION, FreeForm, GyreModel


@dataclass(frozen=True)
class CelRule:
    """A CEL validation rule (x-kubernetes-validations) attached to a schema node."""

    rule: str
    message: str
    field_path: str | None = None
    reason: str | None = None

    def to_schema(self) -> dict[str, str]:
        """The rule as it appears in a CRD schema."""
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


def cel_rules(*rules: CelRule) -> ConfigDict:
    """Model configuration that attaches CEL rules to the model's schema node."""
    validations: list[JsonValue] = [dict(r.to_schema()) for r in rules]
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": validations})


@dataclass(frozen=True)
class PrinterColumn:
    """An additionalPrinterColumns entry: what `kubectl get` shows for a kind."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str | None = None

    def to_schema(self) -> dict[str, Any]:
        """The column as it appears in a CRD version."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            out["priority"] = self.priority
        if self.format:
            out["format"] = self.format
        return out


@dataclass(frozen=True)
class KindInfo:
    """The names and columns of a custom resource kind."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    printer_columns: tuple[PrinterColumn, ...] = field(default=())
    categories: tuple[str, ...] = ("gyre",)

    @property
    def singular(self) -> str:
        """The lower-case singular name."""
        return self.kind.lower()


PHASE_COLUMN = PrinterColumn(
    "Phase", ".status.phase", description="Where the object is in its life."
)
AGE_COLUMN = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")


class GyreResource(GyreModel):
    """A Gyre object: apiVersion, kind, metadata, spec and status."""

    info: ClassVar[KindInfo]

    api_version: str = Field(default=API_VERSION, description="gyre.dev/v1alpha1")
    kind: str = Field(description="The kind of the object.")
    metadata: FreeForm = Field(default_factory=dict, description="Standard object metadata.")
