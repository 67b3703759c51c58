"""Deterministic child names, and the Ready condition every builder writes."""

from __future__ import annotations

import copy
import re
from datetime import timedelta

import pytest
from builders_fixtures import EARLIER, NOW, NOW_TEXT, condition, dataset_obj, ready_condition

from gyre_operator.api import Condition
from gyre_operator.api.common import format_timestamp
from gyre_operator.builders.naming import (
    MAX_LABELLED_NAME,
    child_labels,
    child_name,
    owner_reference,
    short_hash,
)
from gyre_operator.builders.plan import WARNING, EventRecord
from gyre_operator.builders.status import (
    generation_of,
    invalid_spec_plan,
    ready_reason,
    with_ready,
)

# A Job's name is a DNS subdomain and a label value: lower case, digits, '-' and '.', and it
# starts and ends with an alphanumeric character.
JOB_NAME = re.compile(r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")


def test_short_hash_is_stable_and_order_free_in_dicts() -> None:
    # Pinned: a change of the hash renames every child Gyre ever created.
    assert short_hash("uid-iris", {"a": 1, "b": [1, 2]}, 0) == short_hash(
        "uid-iris", {"b": [1, 2], "a": 1}, 0
    )
    assert short_hash("x") == "cd65ea2c"
    assert len(short_hash("x", length=12)) == 12
    assert short_hash("x", length=12).startswith(short_hash("x"))
    assert short_hash("x", 1) != short_hash("x", 2)
    assert short_hash(("a", "b")) == short_hash(["a", "b"])


@pytest.mark.parametrize(
    ("parent", "suffix", "expected"),
    [
        ("iris", "train", "iris-train"),
        ("a" * 57, "train", "a" * 57 + "-train"),  # exactly 63
        ("iris", "profile-0123abcd", "iris-profile-0123abcd"),
    ],
)
def test_child_name_short(parent: str, suffix: str, expected: str) -> None:
    assert child_name(parent, suffix) == expected


@pytest.mark.parametrize(
    ("parent", "suffix"),
    [
        ("a" * 58, "train"),  # 64: one over
        ("b" * 253, "verify"),
        ("my-very-long-training-run-name-for-the-quarterly-churn-model-v2", "train"),
        ("c" * 30 + "-" * 20 + "d" * 20, "profile-0123abcd"),  # cut inside a run of dashes
        ("e" * 46 + "." + "f" * 40, "verify"),  # cut just after a dot
    ],
)
def test_child_name_long_is_shortened_deterministically(parent: str, suffix: str) -> None:
    name = child_name(parent, suffix)
    assert len(name) <= MAX_LABELLED_NAME
    assert name.endswith(f"-{short_hash(parent)}-{suffix}")
    assert JOB_NAME.match(name), name
    assert name == child_name(parent, suffix)


@pytest.mark.parametrize(
    ("parent", "suffix", "kept"),
    [
        ("c" * 30 + "-" * 20 + "d" * 20, "profile-0123abcd", "c" * 30),
        ("e" * 46 + "." + "f" * 40, "verify", "e" * 46),
        ("g" * 100, "train", "g" * 48),
    ],
)
def test_child_name_long_keeps_a_clean_prefix(parent: str, suffix: str, kept: str) -> None:
    assert child_name(parent, suffix) == f"{kept}-{short_hash(parent)}-{suffix}"


def test_child_name_distinct_long_parents_stay_distinct() -> None:
    common = "run-" + "x" * 70
    names = {child_name(f"{common}-{i}", "train") for i in range(50)}
    assert len(names) == 50


def test_owner_reference_and_labels() -> None:
    owner = dataset_obj("iris")
    assert owner_reference(owner) == {
        "apiVersion": "gyre.dev/v1alpha1",
        "kind": "Dataset",
        "name": "iris",
        "uid": "uid-iris",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert child_labels(owner, "profile") == {
        "app.kubernetes.io/managed-by": "gyre",
        "app.kubernetes.io/component": "profile",
        "gyre.dev/owner-kind": "Dataset",
    }


def _conditions(*wire: dict[str, object]) -> list[Condition]:
    return [Condition.model_validate(c) for c in wire]


@pytest.mark.parametrize(
    ("old", "ready", "reason", "expected_time"),
    [
        ([], False, "Profiling", NOW_TEXT),  # new condition: now
        ([ready_condition("False", "Pending")], False, "Profiling", EARLIER),  # same status
        ([ready_condition("False", "Pending")], True, "Profiled", NOW_TEXT),  # status changed
        ([ready_condition("True", "Profiled")], True, "Profiled", EARLIER),
        ([ready_condition("True", "Profiled")], False, "ProfileFailed", NOW_TEXT),
    ],
)
def test_with_ready_moves_the_time_only_on_a_status_change(
    old: list[dict[str, object]], ready: bool, reason: str, expected_time: str
) -> None:
    conditions = _conditions(*old)
    before = copy.deepcopy(conditions)
    updated = with_ready(conditions, ready, reason, "msg", generation=7, now=NOW)
    assert conditions == before
    assert len(updated) == 1
    assert updated[0].type == "Ready"
    assert updated[0].status == ("True" if ready else "False")
    assert updated[0].reason == reason
    assert updated[0].message == "msg"
    assert updated[0].observed_generation == 7
    assert updated[0].last_transition_time == expected_time


def test_with_ready_keeps_other_conditions_and_their_order() -> None:
    other = {
        "type": "DeletionBlocked",
        "status": "True",
        "reason": "Served",
        "lastTransitionTime": EARLIER,
    }
    conditions = _conditions(ready_condition("False", "Pending"), other)
    updated = with_ready(conditions, True, "Verified", "", generation=None, now=NOW)
    assert [c.type for c in updated] == ["Ready", "DeletionBlocked"]
    assert updated[1] == conditions[1]
    assert updated[0].observed_generation is None


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [([], None), ([ready_condition("False", "DatasetNotFound")], "DatasetNotFound")],
)
def test_ready_reason(conditions: list[dict[str, object]], expected: str | None) -> None:
    assert ready_reason(_conditions(*conditions)) == expected


@pytest.mark.parametrize(
    ("obj", "expected"),
    [({}, None), ({"metadata": {}}, None), ({"metadata": {"generation": "4"}}, 4)],
)
def test_generation_of(obj: dict[str, object], expected: int | None) -> None:
    assert generation_of(obj) == expected


def test_timestamp_is_utc_seconds() -> None:
    assert format_timestamp(NOW + timedelta(microseconds=999_999)) == NOW_TEXT


def test_invalid_spec_plan_first_time() -> None:
    obj = dataset_obj("iris", generation=3, status={"phase": "Ready", "profileJob": "j"})
    before = copy.deepcopy(obj)
    plan = invalid_spec_plan(obj, "spec.source.uri: bad", NOW)
    assert obj == before
    assert plan.status["phase"] == "Ready"  # the rest of the status is kept
    assert plan.status["profileJob"] == "j"
    assert plan.status["observedGeneration"] == 3
    assert condition(plan.status) == {
        "type": "Ready",
        "status": "False",
        "reason": "InvalidSpec",
        "message": "spec.source.uri: bad",
        "observedGeneration": 3,
        "lastTransitionTime": NOW_TEXT,
    }
    assert plan.events == (EventRecord(WARNING, "InvalidSpec", "spec.source.uri: bad"),)
    assert plan.children == ()
    assert plan.requeue_after is None


def test_invalid_spec_plan_again_posts_no_event() -> None:
    old = ready_condition("False", "InvalidSpec", generation=2, message="old")
    obj = dataset_obj("iris", generation=3, status={"conditions": [old]})
    plan = invalid_spec_plan(obj, "new message", NOW)
    assert plan.events == ()
    assert condition(plan.status)["message"] == "new message"
    assert condition(plan.status)["lastTransitionTime"] == EARLIER
    assert condition(plan.status)["observedGeneration"] == 3


def test_invalid_spec_plan_from_another_false_reason_posts_an_event() -> None:
    obj = dataset_obj("iris", status={"conditions": [ready_condition("False", "Profiling")]})
    plan = invalid_spec_plan(obj, "m", NOW)
    assert [e.reason for e in plan.events] == ["InvalidSpec"]
    assert condition(plan.status)["lastTransitionTime"] == EARLIER


def test_invalid_spec_plan_with_unreadable_conditions_starts_over() -> None:
    obj = dataset_obj("iris", status={"conditions": [{"type": "Ready"}]})
    plan = invalid_spec_plan(obj, "m", NOW)
    assert plan.status["conditions"] == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "InvalidSpec",
            "message": "m",
            "observedGeneration": 1,
            "lastTransitionTime": NOW_TEXT,
        }
    ]
    assert len(plan.events) == 1
