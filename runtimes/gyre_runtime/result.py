"""What a runtime reports to the operator: one JSON line in the pod's termination message.

Kubernetes keeps at most 4 KiB of a container's termination message; anything larger (a
full profile, a model's metadata) goes to the artifact store and the message carries its URI.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TERMINATION_LIMIT = 4096
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


class RuntimeFailure(Exception):
    """Bad input or a failed check: the runtime exits 1 and reports reason and message."""

    def __init__(self, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = " ".join(message.split())
        self.details = details


def termination_path() -> Path:
    """Where the termination message goes (the local kubelet points at its own file)."""
    return Path(os.environ.get("GYRE_TERMINATION_MESSAGE_PATH", DEFAULT_TERMINATION_PATH))


def encode(result: Mapping[str, Any]) -> str:
    """The compact one-line JSON of a result; ValueError when it exceeds the 4 KiB limit."""
    text = json.dumps(result, separators=(",", ":"), sort_keys=True, allow_nan=False)
    if len(text.encode()) > TERMINATION_LIMIT:
        raise ValueError(f"result is {len(text.encode())} bytes, over {TERMINATION_LIMIT}")
    return text


def failure_message(failure: RuntimeFailure) -> str:
    """The one-line JSON reported for a failure, its message cut to fit the limit."""
    base = {**failure.details, "reason": failure.reason, "message": ""}
    if len(json.dumps(base, separators=(",", ":")).encode()) > TERMINATION_LIMIT // 2:
        base = {"reason": failure.reason, "message": ""}  # details too large: keep the line
    room = TERMINATION_LIMIT - len(encode(base).encode())
    return encode({**base, "message": failure.message.encode()[:room].decode(errors="ignore")})


def write_termination_message(text: str) -> None:
    """Write the message where Kubernetes reads it; outside a pod the path may not exist."""
    # Run by hand outside a pod the path may be missing: stdout and the exit code remain.
    with contextlib.suppress(OSError):
        termination_path().write_text(text)
