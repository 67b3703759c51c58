"""Kubernetes API errors and the metav1.Status objects that describe them."""

from __future__ import annotations

from typing import Any

from gyre_local.store.builtins import ResourceType

Causes = list[tuple[str, str, str]]  # (reason, field, detail) of a 422 Invalid


class ApiError(Exception):
    """A Kubernetes API error; .status() -> the metav1.Status dict."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The metav1.Status object describing this error."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status


def bad_request(message: str) -> ApiError:
    """A 400 BadRequest error."""
    return ApiError(400, "BadRequest", message)


def resource_details(rtype: ResourceType, name: str, kind: str | None = None) -> dict[str, Any]:
    """The details of a Status naming one object: name, group and kind."""
    details: dict[str, Any] = {"name": name}
    if rtype.group:
        details["group"] = rtype.group
    details["kind"] = kind or rtype.plural
    return details


def not_found(rtype: ResourceType, name: str) -> ApiError:
    """A 404 NotFound error for one named object."""
    return ApiError(
        404, "NotFound", f'{qualified(rtype)} "{name}" not found', resource_details(rtype, name)
    )


def qualified(rtype: ResourceType) -> str:
    """The resource as Kubernetes names it in messages: plural.group."""
    return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural


def invalid(rtype: ResourceType, name: str, causes: Causes) -> ApiError:
    """A 422 Invalid error from (reason, field, detail) causes, worded as Kubernetes does."""
    kind = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
    parts = [f"{field_path}: {detail}" for _, field_path, detail in causes]
    summary = parts[0] if len(parts) == 1 else f"[{', '.join(parts)}]"
    details = resource_details(rtype, name, rtype.kind)
    details["causes"] = [
        {"reason": reason, "message": detail, "field": field_path}
        for reason, field_path, detail in causes
    ]
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', details)
