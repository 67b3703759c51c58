"""The canary decision: a pure function of (rollout spec, rollout state, figures, now).

Every analysis interval the operator reads the canary's request figures and asks `decide`
what to do. Too few requests is waiting, never a failure, until the step's deadline; a
figure over a threshold is one failed interval; one failure more than `failureLimit` rolls
the canary back; a step whose pause has elapsed with a passed interval and no rollback
advances, and the last step promotes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gyre_operator.api.common import parse_duration
from gyre_operator.api.inference import Rollout, TrafficFigures


class Action(StrEnum):
    """What the rollout does next."""

    WAIT = "Wait"  # nothing to judge yet: no reading, or too few requests
    PASS = "Pass"  # a passed interval; the step's pause is still running
    FAIL = "Fail"  # a failed interval, within the failure limit
    ADVANCE = "Advance"  # the step passed: go to the next one
    PROMOTE = "Promote"  # the last step passed: the canary becomes stable
    ROLLBACK = "Rollback"  # the canary goes to zero and its version is marked failed


@dataclass(frozen=True)
class RolloutState:
    """Where a running canary is: its step, since when, and how its intervals went."""

    step: int
    step_started_at: datetime
    failures: int = 0
    passes: int = 0
    canary_ready: bool = True


@dataclass(frozen=True)
class Decision:
    """The action, with a CamelCase reason and a sentence for conditions and Events."""

    action: Action
    reason: str
    message: str


def step_pause(rollout: Rollout, step: int) -> timedelta:
    """How long a step lasts: its pause, or one analysis interval when it has none."""
    pause = rollout.steps[step].pause
    return parse_duration(pause or rollout.analysis.interval)


def breach(rollout: Rollout, canary: TrafficFigures) -> str | None:
    """Which threshold the canary's figures exceed, as a sentence; None when within all."""
    analysis = rollout.analysis
    if canary.error_rate is not None and canary.error_rate > analysis.max_error_rate:
        return f"error rate {canary.error_rate:.2%} over the limit {analysis.max_error_rate:.2%}"
    limit = analysis.max_latency_p99_ms
    if limit is not None and canary.latency_p99_ms is not None and canary.latency_p99_ms > limit:
        return f"p99 latency {canary.latency_p99_ms:.1f} ms over the limit {limit:g} ms"
    return None


def decide(
    rollout: Rollout, state: RolloutState, canary: TrafficFigures | None, now: datetime
) -> Decision:
    """The next action of a running canary given the figures of the interval just read
    (None when no interval was read: the canary is not ready, or no reading was due)."""
    analysis = rollout.analysis
    elapsed = now - state.step_started_at
    past_deadline = elapsed >= parse_duration(analysis.step_deadline)
    step_over = elapsed >= step_pause(rollout, state.step)
    if not state.canary_ready:
        if past_deadline:
            return Decision(
                Action.ROLLBACK, "CanaryNotReady",
                f"the canary's pods were not ready within {analysis.step_deadline}",
            )  # fmt: skip
        return Decision(Action.WAIT, "WaitingForCanary", "waiting for the canary's pods")
    if canary is None:
        if past_deadline and state.passes == 0:
            return Decision(
                Action.ROLLBACK, "NoFigures",
                f"no figures of the canary could be read within {analysis.step_deadline}",
            )  # fmt: skip
        return Decision(Action.WAIT, "WaitingForAnalysis", "waiting for the next interval")
    if canary.requests < analysis.min_requests:
        if state.passes > 0 and step_over:
            return _step_passed(rollout, state)
        if past_deadline:
            return Decision(
                Action.ROLLBACK, "InsufficientTraffic",
                f"the canary got {canary.requests} requests in its last interval, fewer than "
                f"{analysis.min_requests}, until the step deadline {analysis.step_deadline}",
            )  # fmt: skip
        return Decision(
            Action.WAIT, "Inconclusive",
            f"{canary.requests} canary requests in the interval, fewer than "
            f"{analysis.min_requests}: waiting",
        )  # fmt: skip
    problem = breach(rollout, canary)
    if problem is not None:
        if state.failures + 1 > analysis.failure_limit:
            return Decision(
                Action.ROLLBACK, "AnalysisFailed",
                f"{problem}; {state.failures + 1} failed intervals, limit {analysis.failure_limit}",
            )  # fmt: skip
        return Decision(
            Action.FAIL, "AnalysisFailed",
            f"{problem} (failed interval {state.failures + 1} of {analysis.failure_limit} "
            "tolerated)",
        )  # fmt: skip
    if step_over:
        return _step_passed(rollout, state)
    return Decision(Action.PASS, "AnalysisPassed", f"interval passed on {canary.requests} requests")


def _step_passed(rollout: Rollout, state: RolloutState) -> Decision:
    if state.step + 1 >= len(rollout.steps):
        return Decision(Action.PROMOTE, "Promoting", "the last step passed: promoting the canary")
    weight = rollout.steps[state.step + 1].weight
    return Decision(
        Action.ADVANCE, "StepPassed",
        f"step {state.step + 1} of {len(rollout.steps)} passed: next step at weight {weight}%",
    )  # fmt: skip
