"""`gyre rollout`: which annotation each action writes, when it refuses, what status prints."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gyre_operator.rollouts import RolloutError, describe, request_for

RUNNING = {"canaryVersion": 3, "stableVersion": 2}
FAILED = {"failedVersions": [{"version": 3, "reason": "Aborted"}, {"version": 5, "reason": "X"}]}


@pytest.mark.parametrize(
    ("action", "status", "full", "version", "expected"),
    [
        ("promote", RUNNING, False, None, "promote"),
        ("promote", RUNNING, True, None, "promote-full"),
        ("abort", RUNNING, False, None, "abort"),
        ("retry", FAILED, False, None, "retry=5"),
        ("retry", FAILED, False, 3, "retry=3"),
    ],
)
def test_requests(
    action: str, status: dict[str, Any], full: bool, version: int | None, expected: str
) -> None:
    assert request_for(action, status, full=full, version=version) == expected


@pytest.mark.parametrize(
    ("action", "status", "version", "message"),
    [
        ("promote", {"stableVersion": 2}, None, "no rollout is running: nothing to promote"),
        ("abort", {}, None, "no rollout is running: nothing to abort"),
        ("retry", {}, None, "no version was rolled back: nothing to retry"),
        ("retry", FAILED, 4, "version 4 was not rolled back (rolled back: [3, 5])"),
    ],
)
def test_refusals(action: str, status: dict[str, Any], version: int | None, message: str) -> None:
    with pytest.raises(RolloutError, match=re.escape(message)):
        request_for(action, status, full=False, version=version)


def test_status_of_a_running_canary() -> None:
    obj = {
        "metadata": {"namespace": "prod", "name": "wine"},
        "spec": {"model": "wine", "track": "latest", "rollout": {"steps": [{}, {}]}},
        "status": {
            "phase": "Progressing",
            "stableVersion": 2,
            "canaryVersion": 3,
            "currentStep": 1,
            "canaryWeight": 50,
            "analysis": {
                "lastResult": "Pass: interval passed on 40 requests",
                "failures": 1,
                "canary": {"requests": 40, "errorRate": 0.0, "latencyP99Ms": 2.5},
            },
            "failedVersions": [{"version": 1, "reason": "Aborted", "message": "by hand"}],
        },
    }
    text = describe(obj)
    assert "Name:       prod/wine" in text
    assert "Model:      wine (track latest)" in text
    assert "Canary:     v3, step 2 of 2, weight 50%" in text
    assert "  canary:  40 requests, 0.00% errors, p99 2.5 ms" in text
    assert "Rolled back: v1 Aborted: by hand" in text
