"""ModelVersion: verify a user-registered artifact; hold deletion while a service serves it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from gyre_operator.api import ModelVersion, to_wire
from gyre_operator.api.common import Condition, format_timestamp, set_condition
from gyre_operator.api.modelversion import ModelVersionPhase, ModelVersionStatus, Signature
from gyre_operator.builders.jobs import (
    Container,
    JobRequest,
    JobState,
    ObservedJob,
    build_job,
    failure_text,
)
from gyre_operator.builders.naming import child_name
from gyre_operator.builders.plan import NORMAL, WARNING, EventRecord, Plan
from gyre_operator.builders.status import generation_of, with_ready
from gyre_operator.builders.trainingrun import VERIFIED_ANNOTATION
from gyre_operator.config import OperatorConfig

COMPONENT = "verify"
SERVED_FINALIZER = "gyre.dev/served"
DELETION_BLOCKED = "DeletionBlocked"
VERIFY_BACKOFF_LIMIT = 1


@dataclass(frozen=True)
class ModelVersionObserved:
    """The verification Job of a ModelVersion, when it has one."""

    job: ObservedJob | None = None


def verify_job_name(name: str) -> str:
    """The deterministic name of a ModelVersion's verification Job."""
    return child_name(name, "verify")


def build_modelversion(
    obj: dict[str, Any], observed: ModelVersionObserved, config: OperatorConfig, now: datetime
) -> Plan:
    """The plan for a ModelVersion: verification, status and the serving finalizer."""
    version = ModelVersion.model_validate(obj)
    old = version.status or ModelVersionStatus()
    generation = generation_of(obj)
    status, children, events = _verification(obj, version, old, observed, config, now)
    status.observed_generation = generation
    status.conditions, blocked = _deletion(obj, status, generation, now)
    if blocked and DELETION_BLOCKED not in _condition_types(old.conditions):
        events = (*events, blocked)
    return Plan(
        status=to_wire(status),
        children=children,
        events=events,
        finalizers=_finalizers(obj, status),
    )


def _verification(
    obj: dict[str, Any],
    version: ModelVersion,
    old: ModelVersionStatus,
    observed: ModelVersionObserved,
    config: OperatorConfig,
    now: datetime,
) -> tuple[ModelVersionStatus, tuple[dict[str, Any], ...], tuple[EventRecord, ...]]:
    spec = version.spec
    generation = generation_of(obj)
    status = old.model_copy()
    if old.phase in (ModelVersionPhase.READY, ModelVersionPhase.FAILED):
        return status, (), ()  # a ModelVersion's spec is immutable: decided once
    annotations = version.metadata.get("annotations") or {}
    # A TrainingRun computed the digest while uploading and read the signature from the graph.
    registered = annotations.get(VERIFIED_ANNOTATION) == spec.artifact.sha256
    if registered and spec.signature is not None:
        message = f"registered by TrainingRun with sha256 {spec.artifact.sha256[:12]}"
        return _ready(
            old, spec.signature, version.metadata["creationTimestamp"], message, generation, now
        )
    job = observed.job
    name = verify_job_name(version.metadata["name"])
    if job is None or job.state is JobState.ACTIVE:
        status.phase = ModelVersionPhase.PENDING
        status.conditions = with_ready(
            old.conditions, False, "Verifying", f"verification Job {name} is running",
            generation=generation, now=now,
        )  # fmt: skip
        if job is not None:
            return status, (), ()
        event = EventRecord(NORMAL, "Verifying", f"created verification Job {name}")
        return status, (_verify_job(obj, version, name, config),), (event,)
    if job.state is JobState.FAILED:
        reason = (job.result.reason if job.result else "") or "VerificationFailed"
        return _failed(old, reason, failure_text(job), generation, now)
    result = job.result.data if job.result else {}
    try:
        found = Signature.model_validate(result.get("signature"))
    except ValidationError:
        return _failed(
            old, "VerificationFailed", f"Job {name} reported no valid signature", generation, now
        )
    if spec.signature is not None and spec.signature != found:
        message = "spec.signature differs from the signature in the ONNX graph"
        return _failed(old, "SignatureMismatch", message, generation, now)
    message = f"sha256 {spec.artifact.sha256[:12]} verified, signature read from the model"
    return _ready(
        old, found, job.completion_time or format_timestamp(now), message, generation, now
    )


def _ready(
    old: ModelVersionStatus,
    signature: Signature | None,
    verified_at: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> tuple[ModelVersionStatus, tuple[dict[str, Any], ...], tuple[EventRecord, ...]]:
    status = old.model_copy(
        update={
            "phase": ModelVersionPhase.READY,
            "signature": signature,
            "verified_at": verified_at,
        }
    )
    status.conditions = with_ready(
        old.conditions, True, "Verified", message, generation=generation, now=now
    )
    return status, (), (EventRecord(NORMAL, "Verified", message),)


def _failed(
    old: ModelVersionStatus, reason: str, message: str, generation: int | None, now: datetime
) -> tuple[ModelVersionStatus, tuple[dict[str, Any], ...], tuple[EventRecord, ...]]:
    status = old.model_copy(update={"phase": ModelVersionPhase.FAILED})
    status.conditions = with_ready(
        old.conditions, False, reason, message, generation=generation, now=now
    )
    return status, (), (EventRecord(WARNING, reason, message),)


def _verify_job(
    obj: dict[str, Any], version: ModelVersion, name: str, config: OperatorConfig
) -> dict[str, Any]:
    artifact = version.spec.artifact
    container = Container(
        name="verify",
        image=config.runtime_image,
        args=("verify", "--uri", artifact.uri, "--sha256", artifact.sha256),
        secrets=config.secrets(),
        uris=(artifact.uri,),
    )
    request = JobRequest(
        owner=obj,
        name=name,
        component=COMPONENT,
        containers=(container,),
        backoff_limit=VERIFY_BACKOFF_LIMIT,
    )
    return build_job(request)


def _deletion(
    obj: dict[str, Any], status: ModelVersionStatus, generation: int | None, now: datetime
) -> tuple[list[Condition], EventRecord | None]:
    """A DeletionBlocked condition while a deleted version is still served."""
    deleting = bool(obj["metadata"].get("deletionTimestamp"))
    others = [c for c in status.conditions if c.type != DELETION_BLOCKED]
    if not (deleting and status.served_by):
        return others, None
    message = f"deletion waits until nothing serves it; served by {', '.join(status.served_by)}"
    conditions = set_condition(
        status.conditions, DELETION_BLOCKED, True, "Served", message,
        observed_generation=generation, now=now,
    )  # fmt: skip
    return conditions, EventRecord(WARNING, DELETION_BLOCKED, message)


def _finalizers(obj: dict[str, Any], status: ModelVersionStatus) -> tuple[str, ...] | None:
    """The object's finalizers with Gyre's serving one as it should be, or None if unchanged."""
    current = list(obj["metadata"].get("finalizers") or [])
    wanted = [f for f in current if f != SERVED_FINALIZER]
    # No finalizer may be added to an object being deleted: only an existing one is kept.
    deleting = bool(obj["metadata"].get("deletionTimestamp"))
    if status.served_by and (not deleting or SERVED_FINALIZER in current):
        wanted.append(SERVED_FINALIZER)
    return None if set(wanted) == set(current) else tuple(wanted)


def _condition_types(conditions: list[Condition]) -> set[str]:
    return {c.type for c in conditions}
