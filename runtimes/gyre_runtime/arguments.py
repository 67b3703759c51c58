"""Command-line values the subcommands share a rule for."""

from __future__ import annotations

import json
from typing import Any

from gyre_runtime.result import RuntimeFailure


def json_object(flag: str, text: str | None) -> dict[str, Any] | None:
    """The JSON object a flag carries (None when the flag is absent); InvalidArgument when
    the text is not JSON or not an object."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise RuntimeFailure("InvalidArgument", f"{flag} is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise RuntimeFailure("InvalidArgument", f"{flag} must be a JSON object, not {text}")
    return value
