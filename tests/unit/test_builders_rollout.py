"""The canary decision: every branch of `decide`, on a rollout of two steps.

The rollout: step 1 at 10% for 2m, step 2 at 50% with no pause (one 30s interval); an
interval is judged on at least 20 requests, at most 5% errors and a p99 of 250 ms; two
failed intervals are tolerated; a step that cannot be judged within 10m rolls back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from builders_fixtures import NOW

from gyre_operator.api.inference import Rollout, TrafficFigures
from gyre_operator.builders.rollout import (
    Action,
    Decision,
    RolloutState,
    breach,
    decide,
    step_pause,
)

ANALYSIS: dict[str, Any] = {
    "interval": "30s",
    "maxErrorRate": 0.05,
    "maxLatencyP99Ms": 250,
    "minRequests": 20,
    "failureLimit": 2,
    "stepDeadline": "10m",
}
ROLLOUT = Rollout.model_validate(
    {"steps": [{"weight": 10, "pause": "2m"}, {"weight": 50}], "analysis": ANALYSIS}
)
GOOD = TrafficFigures(requests=100, error_rate=0.01, latency_p99_ms=120.0)
FEW = TrafficFigures(requests=19, error_rate=0.0, latency_p99_ms=100.0)
ERRORS = TrafficFigures(requests=100, error_rate=0.06, latency_p99_ms=120.0)
SLOW = TrafficFigures(requests=100, error_rate=0.0, latency_p99_ms=251.0)
S, M = timedelta(seconds=1), timedelta(minutes=1)


def rollout(**analysis: Any) -> Rollout:
    """The test rollout with some analysis settings replaced (None removes one)."""
    settings = {k: v for k, v in {**ANALYSIS, **analysis}.items() if v is not None}
    return Rollout.model_validate(
        {"steps": [{"weight": 10, "pause": "2m"}, {"weight": 50}], "analysis": settings}
    )


def state(
    elapsed: timedelta, step: int = 0, failures: int = 0, passes: int = 0, ready: bool = True
) -> RolloutState:
    return RolloutState(
        step=step,
        step_started_at=NOW - elapsed,
        failures=failures,
        passes=passes,
        canary_ready=ready,
    )


@pytest.mark.parametrize(
    ("current", "figures", "action", "reason"),
    [
        # The canary's pods are not ready: wait, until the step's deadline.
        (state(1 * M, ready=False), None, Action.WAIT, "WaitingForCanary"),
        (state(1 * M, ready=False), GOOD, Action.WAIT, "WaitingForCanary"),
        (state(10 * M - S, ready=False), None, Action.WAIT, "WaitingForCanary"),
        (state(10 * M, ready=False), None, Action.ROLLBACK, "CanaryNotReady"),
        (state(10 * M, ready=False, passes=3), GOOD, Action.ROLLBACK, "CanaryNotReady"),
        # No figures were read: wait; past the deadline with no passed interval, roll back.
        (state(1 * M), None, Action.WAIT, "WaitingForAnalysis"),
        (state(5 * M, passes=1), None, Action.WAIT, "WaitingForAnalysis"),
        (state(10 * M - S), None, Action.WAIT, "WaitingForAnalysis"),
        (state(10 * M), None, Action.ROLLBACK, "NoFigures"),
        (state(10 * M, failures=1), None, Action.ROLLBACK, "NoFigures"),
        (state(10 * M, passes=1), None, Action.WAIT, "WaitingForAnalysis"),
        # Too few requests: inconclusive, never a failure.
        (state(30 * S), FEW, Action.WAIT, "Inconclusive"),
        (state(30 * S, failures=2), FEW, Action.WAIT, "Inconclusive"),
        (state(5 * M), TrafficFigures(requests=0), Action.WAIT, "Inconclusive"),
        (state(1 * M, passes=1), FEW, Action.WAIT, "Inconclusive"),  # pause still running
        (state(10 * M - S), FEW, Action.WAIT, "Inconclusive"),
        # ... but a step that already passed once and whose pause is over goes on.
        (state(2 * M, passes=1), FEW, Action.ADVANCE, "StepPassed"),
        (state(30 * S, step=1, passes=1), FEW, Action.PROMOTE, "Promoting"),
        (state(10 * M, passes=1), FEW, Action.ADVANCE, "StepPassed"),
        # ... and one that never passed rolls back at its deadline.
        (state(10 * M), FEW, Action.ROLLBACK, "InsufficientTraffic"),
        (state(10 * M, step=1), TrafficFigures(requests=0), Action.ROLLBACK, "InsufficientTraffic"),
        # Exactly minRequests is enough to judge.
        (state(30 * S), TrafficFigures(requests=20, error_rate=0.0), Action.PASS, "AnalysisPassed"),
        # Over the error rate: a failure while within failureLimit, then a rollback.
        (state(30 * S), ERRORS, Action.FAIL, "AnalysisFailed"),
        (state(30 * S, failures=1), ERRORS, Action.FAIL, "AnalysisFailed"),
        (state(30 * S, failures=2), ERRORS, Action.ROLLBACK, "AnalysisFailed"),
        (state(30 * S, failures=5), ERRORS, Action.ROLLBACK, "AnalysisFailed"),
        # A breach counts even when the pause is over or the deadline passed.
        (state(3 * M, passes=4), ERRORS, Action.FAIL, "AnalysisFailed"),
        (state(11 * M), ERRORS, Action.FAIL, "AnalysisFailed"),
        (state(30 * S, step=1), ERRORS, Action.FAIL, "AnalysisFailed"),
        # Over the p99 latency: the same.
        (state(30 * S), SLOW, Action.FAIL, "AnalysisFailed"),
        (state(30 * S, failures=2), SLOW, Action.ROLLBACK, "AnalysisFailed"),
        # On the limits themselves: passed.
        (
            state(30 * S),
            TrafficFigures(requests=100, error_rate=0.05, latency_p99_ms=250.0),
            Action.PASS,
            "AnalysisPassed",
        ),
        # Figures the pods could not give (no latency samples, no errors counted) pass.
        (state(30 * S), TrafficFigures(requests=100), Action.PASS, "AnalysisPassed"),
        # Within the pause: passed; once it is over: the next step, or promotion on the last.
        (state(0 * S), GOOD, Action.PASS, "AnalysisPassed"),
        (state(2 * M - S, passes=3), GOOD, Action.PASS, "AnalysisPassed"),
        (state(2 * M), GOOD, Action.ADVANCE, "StepPassed"),
        (state(2 * M, failures=2), GOOD, Action.ADVANCE, "StepPassed"),
        (state(9 * M, passes=2), GOOD, Action.ADVANCE, "StepPassed"),
        # The last step has no pause: it lasts one analysis interval.
        (state(29 * S, step=1), GOOD, Action.PASS, "AnalysisPassed"),
        (state(30 * S, step=1), GOOD, Action.PROMOTE, "Promoting"),
    ],
)
def test_decide(
    current: RolloutState, figures: TrafficFigures | None, action: Action, reason: str
) -> None:
    decision = decide(ROLLOUT, current, figures, NOW)
    assert (decision.action, decision.reason) == (action, reason)
    assert decision.message


@pytest.mark.parametrize(
    ("current", "figures", "expected"),
    [
        (
            state(10 * M, ready=False),
            None,
            Decision(
                Action.ROLLBACK, "CanaryNotReady", "the canary's pods were not ready within 10m"
            ),
        ),
        (
            state(10 * M),
            None,
            Decision(
                Action.ROLLBACK,
                "NoFigures",
                "no figures of the canary could be read within 10m",
            ),
        ),
        (
            state(30 * S),
            FEW,
            Decision(
                Action.WAIT,
                "Inconclusive",
                "19 canary requests in the interval, fewer than 20: waiting",
            ),
        ),
        (
            state(10 * M),
            FEW,
            Decision(
                Action.ROLLBACK,
                "InsufficientTraffic",
                "the canary got 19 requests in its last interval, fewer than 20, until the "
                "step deadline 10m",
            ),
        ),
        (
            state(30 * S, failures=1),
            ERRORS,
            Decision(
                Action.FAIL,
                "AnalysisFailed",
                "error rate 6.00% over the limit 5.00% (failed interval 2 of 2 tolerated)",
            ),
        ),
        (
            state(30 * S, failures=2),
            SLOW,
            Decision(
                Action.ROLLBACK,
                "AnalysisFailed",
                "p99 latency 251.0 ms over the limit 250 ms; 3 failed intervals, limit 2",
            ),
        ),
        (
            state(30 * S),
            GOOD,
            Decision(Action.PASS, "AnalysisPassed", "interval passed on 100 requests"),
        ),
        (
            state(2 * M),
            GOOD,
            Decision(Action.ADVANCE, "StepPassed", "step 1 of 2 passed: next step at weight 50%"),
        ),
        (
            state(30 * S, step=1),
            GOOD,
            Decision(Action.PROMOTE, "Promoting", "the last step passed: promoting the canary"),
        ),
    ],
)
def test_decision_messages(
    current: RolloutState, figures: TrafficFigures | None, expected: Decision
) -> None:
    assert decide(ROLLOUT, current, figures, NOW) == expected


@pytest.mark.parametrize(
    ("figures", "action"),
    [(ERRORS, Action.ROLLBACK), (SLOW, Action.ROLLBACK), (GOOD, Action.PASS)],
)
def test_failure_limit_zero_rolls_back_on_the_first_failed_interval(
    figures: TrafficFigures, action: Action
) -> None:
    decision = decide(rollout(failureLimit=0), state(30 * S), figures, NOW)
    assert decision.action == action
    if action is Action.ROLLBACK:
        assert decision.message.endswith("; 1 failed intervals, limit 0")


def test_without_a_latency_limit_latency_is_not_judged() -> None:
    slow = TrafficFigures(requests=100, error_rate=0.0, latency_p99_ms=1e6)
    decision = decide(rollout(maxLatencyP99Ms=None), state(30 * S), slow, NOW)
    assert decision.action is Action.PASS


def test_min_requests_zero_judges_an_empty_interval() -> None:
    empty = TrafficFigures(requests=0)
    assert decide(rollout(minRequests=0), state(30 * S), empty, NOW).action is Action.PASS
    assert decide(rollout(minRequests=0), state(2 * M), empty, NOW).action is Action.ADVANCE


def test_deadline_shorter_than_the_pause() -> None:
    # Deadline 1m, pause 2m: an interval with too few requests after 1m rolls back even
    # though the step has passed before; passing figures still just pass until 2m.
    short = rollout(stepDeadline="1m")
    assert decide(short, state(1 * M, passes=1), FEW, NOW).action is Action.ROLLBACK
    assert decide(short, state(1 * M, passes=1), GOOD, NOW).action is Action.PASS


@pytest.mark.parametrize(
    ("steps", "step", "pause"),
    [
        ([{"weight": 10, "pause": "2m"}, {"weight": 50}], 0, timedelta(minutes=2)),
        ([{"weight": 10, "pause": "2m"}, {"weight": 50}], 1, timedelta(seconds=30)),
        ([{"weight": 10, "pause": "1h30m"}], 0, timedelta(hours=1, minutes=30)),
        ([{"weight": 10, "pause": "500ms"}], 0, timedelta(milliseconds=500)),
    ],
)
def test_step_pause(steps: list[dict[str, Any]], step: int, pause: timedelta) -> None:
    assert step_pause(Rollout.model_validate({"steps": steps, "analysis": ANALYSIS}), step) == pause


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (GOOD, None),
        (TrafficFigures(requests=0), None),
        (ERRORS, "error rate 6.00% over the limit 5.00%"),
        (SLOW, "p99 latency 251.0 ms over the limit 250 ms"),
        # Both over: the error rate is named.
        (
            TrafficFigures(requests=5, error_rate=1.0, latency_p99_ms=900.0),
            "error rate 100.00% over the limit 5.00%",
        ),
    ],
)
def test_breach(figures: TrafficFigures, expected: str | None) -> None:
    assert breach(ROLLOUT, figures) == expected
