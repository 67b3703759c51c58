"""TrainingRun: wait for the Dataset, pin its digest, one Job, gates, then a ModelVersion."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from gyre_operator.api import API_VERSION, Dataset, ModelVersion, TrainingRun, to_wire
from gyre_operator.api.common import format_timestamp
from gyre_operator.api.dataset import DatasetPhase
from gyre_operator.api.modelversion import ModelVersionSpec
from gyre_operator.api.training import (
    Algorithm,
    Gate,
    Trainer,
    TrainingRunPhase,
    TrainingRunStatus,
)
from gyre_operator.builders.jobs import (
    Container,
    JobRequest,
    JobState,
    ObservedJob,
    build_job,
    failure_text,
)
from gyre_operator.builders.naming import MANAGED_BY, child_name
from gyre_operator.builders.plan import NORMAL, WARNING, EventRecord, Plan
from gyre_operator.builders.status import generation_of, ready_reason, with_ready
from gyre_operator.config import OperatorConfig

COMPONENT = "train"
DIGEST_ANNOTATION = "gyre.dev/dataset-digest"
MODEL_LABEL = "gyre.dev/model"
RUN_UID_LABEL = "gyre.dev/training-run-uid"
RUN_ANNOTATION = "gyre.dev/training-run"
VERIFIED_ANNOTATION = "gyre.dev/verified-sha256"
# A custom trainer's Job shares two directories between its containers: the pinned data set
# is fetched into the input one, the trainer writes the output one, and publish uploads it.
INPUT_DIR = "/gyre/input"
OUTPUT_DIR = "/gyre/output"
WAIT_RETRY_SECONDS = 60.0

# These mirror the runtime's trainer (tests/test_contracts.py holds the two together).
CLASSIFIERS = {
    Algorithm.LOGISTIC_REGRESSION,
    Algorithm.RANDOM_FOREST_CLASSIFIER,
    Algorithm.GRADIENT_BOOSTING_CLASSIFIER,
}
CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "log_loss",
)
REGRESSION_METRICS = ("rmse", "mae", "r2")


@dataclass(frozen=True)
class TrainingObserved:
    """What a TrainingRun's reconcile reads: its Dataset, its Job, the model's versions."""

    dataset: Dataset | None = None
    job: ObservedJob | None = None
    registered: str | None = None
    taken_versions: tuple[int, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a finished run: why it failed, or None when it passed."""

    reason: str | None = None
    message: str = ""


def training_job_name(run_name: str) -> str:
    """The deterministic name of a TrainingRun's one Job."""
    return child_name(run_name, "train")


def waits_for(run: dict[str, Any], namespace: str, dataset: str) -> bool:
    """Whether a TrainingRun (as stored) has yet to start on this Dataset."""
    started = bool((run.get("status") or {}).get("jobName"))
    same_namespace = run["metadata"].get("namespace") == namespace
    return not started and same_namespace and run["spec"]["datasetRef"]["name"] == dataset


def builtin_metrics(algorithm: Algorithm) -> tuple[str, ...]:
    """The metrics the built-in trainer reports for an algorithm."""
    return CLASSIFICATION_METRICS if algorithm in CLASSIFIERS else REGRESSION_METRICS


def evaluate_gates(gates: list[Gate], metrics: dict[str, float]) -> Verdict:
    """Whether the metrics meet every gate; the first violation or unknown metric otherwise."""
    for gate in gates:
        if gate.metric not in metrics:
            reported = ", ".join(sorted(metrics)) or "none"
            return Verdict(
                "InvalidSpec",
                f"gate on metric {gate.metric!r}, which the trainer did not report "
                f"(reported: {reported})",
            )
        value = metrics[gate.metric]
        if gate.min is not None and value < gate.min:
            return Verdict("GateNotMet", f"{gate.metric} {value:.4g} < min {gate.min:g}")
        if gate.max is not None and value > gate.max:
            return Verdict("GateNotMet", f"{gate.metric} {value:.4g} > max {gate.max:g}")
    return Verdict()


def next_version(taken: tuple[int, ...]) -> int:
    """The next free version number of a model."""
    return max(taken, default=0) + 1


def model_version_name(model: str, version: int) -> str:
    """The name a TrainingRun registers version N of a model under: <model>-v<N>."""
    return f"{model}-v{version}"


def unavailable_versions(
    model: str, versions: tuple[int, ...], name_held: Callable[[str], bool]
) -> tuple[int, ...]:
    """The version numbers a new version of model cannot have: the ones it has (or that runs
    are about to register), and above them every N whose name `<model>-vN` something else
    already holds (another model's version, or one registered by hand under that name);
    otherwise every build would choose that name again and collide."""
    taken = set(versions)
    candidate = next_version(tuple(taken))
    while name_held(model_version_name(model, candidate)):
        taken.add(candidate)
        candidate += 1
    return tuple(sorted(taken))


def registering(plan: Plan) -> int | None:
    """The version number a plan registers, if it creates a ModelVersion."""
    for child in plan.children:
        if child["kind"] == ModelVersion.info.kind:
            return int(child["spec"]["version"])
    return None


def dataset_input_path(uri: str) -> str:
    """Where a custom trainer finds the fetched data set: a file, or a directory for a prefix."""
    name = uri.rstrip("/").rsplit("/", 1)[-1] if not uri.endswith("/") else ""
    return f"{INPUT_DIR}/{name or 'data'}"


def output_uri(config: OperatorConfig, model: str, run: str) -> str:
    """Where a run's model files go: <root>/models/<model>/<run>/."""
    return f"{config.artifact_root.rstrip('/')}/models/{model}/{run}/"


def build_trainingrun(
    obj: dict[str, Any], observed: TrainingObserved, config: OperatorConfig, now: datetime
) -> Plan:
    """The plan for a TrainingRun: wait, start its Job, or record how it ended."""
    run = TrainingRun.model_validate(obj)
    old = run.status or TrainingRunStatus()
    if old.phase in (TrainingRunPhase.SUCCEEDED, TrainingRunPhase.FAILED):
        return Plan(status=to_wire(old))  # terminal: a TrainingRun's spec is immutable
    context = _Context(obj, run, old, config, now)
    if observed.job is None:
        return context.start(observed.dataset)
    return context.follow(observed)


class _Context:
    """One build of one TrainingRun (keeps the many small steps free of long signatures)."""

    def __init__(
        self,
        obj: dict[str, Any],
        run: TrainingRun,
        old: TrainingRunStatus,
        config: OperatorConfig,
        now: datetime,
    ) -> None:
        self.obj, self.run, self.old, self.config, self.now = obj, run, old, config, now
        self.name = str(run.metadata["name"])
        self.generation = generation_of(obj)

    # ---- before the Job ----

    def start(self, dataset: Dataset | None) -> Plan:
        """Wait for the Dataset, or fail on a spec that cannot run, or create the Job."""
        waiting = self._dataset_wait(dataset)
        if waiting is not None:
            return self._wait(*waiting)
        assert dataset is not None
        invalid = self._invalid_spec(dataset)
        if invalid:
            return self._finish("InvalidSpec", invalid)
        deadline = self._remaining_deadline()
        if deadline is not None and deadline <= 0:
            limit = self.run.spec.active_deadline_seconds
            return self._finish(
                "DeadlineExceeded", f"activeDeadlineSeconds {limit} passed before training began"
            )
        digest = self.run.spec.dataset_ref.digest or _current_digest(dataset)
        job_name = training_job_name(self.name)
        status = self.old.model_copy(
            update={
                "phase": TrainingRunPhase.RUNNING,
                "dataset_digest": digest,
                "job_name": job_name,
                "start_time": self.old.start_time or format_timestamp(self.now),
                "observed_generation": self.generation,
            }
        )
        status.conditions = self._ready(False, "Training", f"training Job {job_name} is running")
        job = self._job(dataset, digest, job_name)
        event = EventRecord(NORMAL, "Started", f"created training Job {job_name} on {digest[:12]}")
        return Plan(status=to_wire(status), children=(job,), events=(event,))

    def _dataset_wait(self, dataset: Dataset | None) -> tuple[str, str] | None:
        ref = self.run.spec.dataset_ref
        if dataset is None:
            return "DatasetNotFound", f"Dataset {ref.name} does not exist"
        status = dataset.status
        if ref.digest is not None:
            known = {v.digest for v in (status.versions if status else [])}
            if ref.digest in known:
                return None
            return "DatasetNotReady", f"Dataset {ref.name} has no profiled version {ref.digest}"
        if status is None or status.phase != DatasetPhase.READY or not status.current_version:
            phase = (status.phase if status else None) or "Pending"
            return "DatasetNotReady", f"Dataset {ref.name} is {phase}, not Ready"
        return None

    def _wait(self, reason: str, message: str) -> Plan:
        deadline = self.run.spec.active_deadline_seconds
        waited = self._age()
        if deadline is not None and waited >= deadline:
            return self._finish(
                "DatasetNotReady", f"{message} after activeDeadlineSeconds {deadline}"
            )
        status = self.old.model_copy(
            update={"phase": TrainingRunPhase.PENDING, "observed_generation": self.generation}
        )
        status.conditions = self._ready(False, reason, message)
        events: tuple[EventRecord, ...] = ()
        if ready_reason(self.old.conditions) != reason:
            events = (EventRecord(WARNING, reason, message),)
        # Dataset events wake a waiting run; the retry covers a missed one, and the deadline,
        # which no event announces.
        retry = (
            WAIT_RETRY_SECONDS if deadline is None else min(WAIT_RETRY_SECONDS, deadline - waited)
        )
        return Plan(status=to_wire(status), events=events, requeue_after=retry)

    def _invalid_spec(self, dataset: Dataset) -> str:
        trainer = self.run.spec.trainer
        if trainer.algorithm is None:
            return ""
        schema = dataset.spec.schema_
        if schema is None or schema.target is None:
            name = dataset.metadata["name"]
            return f"the built-in trainer needs spec.schema.target on Dataset {name}"
        reported = builtin_metrics(Algorithm(trainer.algorithm))
        unknown = [g.metric for g in self.run.spec.gates if g.metric not in reported]
        if unknown:
            return (
                f"gate on metric {unknown[0]!r}, which {trainer.algorithm} does not report "
                f"(reported: {', '.join(reported)})"
            )
        return ""

    def _job(self, dataset: Dataset, digest: str, job_name: str) -> dict[str, Any]:
        spec = self.run.spec
        trainer = spec.trainer
        schema = dataset.spec.schema_
        features = [f.name for f in schema.features] if schema else []
        target = schema.target if schema else None
        out = output_uri(self.config, spec.model, self.name)
        secret = dataset.spec.source.secret_ref.name if dataset.spec.source.secret_ref else None
        uris = (dataset.spec.source.uri, self.config.artifact_root)
        resources = to_wire(spec.resources) if spec.resources else None
        common = [
            "--run", self.name,
            "--model", spec.model,
            "--output-uri", out,
        ]  # fmt: skip
        data = [
            "--dataset-uri", dataset.spec.source.uri,
            "--dataset-digest", digest,
        ]  # fmt: skip
        if features:
            data += ["--features", json.dumps(features)]
        init: tuple[Container, ...] = ()
        if trainer.algorithm is not None:
            args = ["train", *common, *data, "--format", str(dataset.spec.format)]
            args += ["--algorithm", str(trainer.algorithm), "--target", str(target)]
            args += ["--hyperparameters", json.dumps(trainer.hyperparameters or {})]
            args += ["--validation-fraction", repr(trainer.validation_fraction)]
            args += ["--seed", str(trainer.seed)]
            main = Container("train", self.config.runtime_image, tuple(args),
                             secrets=self.config.secrets(secret), resources=resources,
                             uris=uris)  # fmt: skip
        else:
            local = dataset_input_path(dataset.spec.source.uri)
            fetch = Container(
                "fetch",
                self.config.runtime_image,
                ("fetch", "--uri", dataset.spec.source.uri, "--sha256", digest, "--output", local),
                secrets=(secret,) if secret else (),
                uris=(dataset.spec.source.uri,),
            )
            init = (fetch, self._custom_trainer(trainer, dataset, digest, features, target, local))
            args = ["publish", *common, *data, "--output-dir", OUTPUT_DIR]
            main = Container(
                "publish", self.config.runtime_image, tuple(args),
                secrets=self.config.secrets(), uris=uris,
            )  # fmt: skip
        request = JobRequest(
            owner=self.obj,
            name=job_name,
            component=COMPONENT,
            containers=(main,),
            init_containers=init,
            backoff_limit=spec.backoff_limit,
            active_deadline_seconds=self._remaining_deadline(),
            labels={MODEL_LABEL: spec.model, RUN_UID_LABEL: str(self.run.metadata["uid"])},
            annotations={DIGEST_ANNOTATION: digest},
            shared_dirs=(INPUT_DIR, OUTPUT_DIR) if init else (),
        )
        return build_job(request)

    def _custom_trainer(
        self,
        trainer: Trainer,
        dataset: Dataset,
        digest: str,
        features: list[str],
        target: str | None,
        local: str,
    ) -> Container:
        assert trainer.image is not None
        contract = {
            "GYRE_DATASET_PATH": local,
            "GYRE_TRAINING_RUN": self.name,
            "GYRE_MODEL": self.run.spec.model,
            "GYRE_DATASET_URI": dataset.spec.source.uri,
            "GYRE_DATASET_FORMAT": str(dataset.spec.format),
            "GYRE_DATASET_DIGEST": digest,
            "GYRE_FEATURES": json.dumps(features),
            "GYRE_TARGET": target or "",
            "GYRE_HYPERPARAMETERS": json.dumps(trainer.hyperparameters or {}),
            "GYRE_VALIDATION_FRACTION": repr(trainer.validation_fraction),
            "GYRE_SEED": str(trainer.seed),
            "GYRE_OUTPUT_DIR": OUTPUT_DIR,
        }
        env = [{"name": k, "value": v} for k, v in contract.items()]
        env += [to_wire(e) for e in trainer.env or []]
        return Container(
            name="trainer",
            image=trainer.image,
            command=tuple(trainer.command or ()),
            args=tuple(trainer.args or ()),
            env=tuple(env),
            resources=to_wire(self.run.spec.resources) if self.run.spec.resources else None,
        )

    def _remaining_deadline(self) -> int | None:
        deadline = self.run.spec.active_deadline_seconds
        if deadline is None:
            return None
        return deadline - int(self._age())

    def _age(self) -> float:
        """Seconds since the run was created: what activeDeadlineSeconds counts."""
        created = datetime.fromisoformat(str(self.run.metadata["creationTimestamp"]))
        return (self.now - created).total_seconds()

    # ---- with the Job ----

    def follow(self, observed: TrainingObserved) -> Plan:
        """Reflect the Job: running, failed, or succeeded and registered."""
        job = observed.job
        assert job is not None
        status = self.old.model_copy(
            update={
                "phase": TrainingRunPhase.RUNNING,
                "job_name": job.name,
                "dataset_digest": job.annotations.get(DIGEST_ANNOTATION),
                "start_time": self.old.start_time or job.start_time or format_timestamp(self.now),
                "observed_generation": self.generation,
            }
        )
        if job.state is JobState.ACTIVE:
            status.conditions = self._ready(
                False, "Training", f"training Job {job.name} is running"
            )
            return Plan(status=to_wire(status))
        if job.state is JobState.FAILED:
            if job.condition_reason == "DeadlineExceeded":
                return self._finish("DeadlineExceeded", failure_text(job), status)
            return self._finish("JobFailed", failure_text(job, with_reason=True), status)
        result = job.result.data if job.result is not None else {}
        metrics = _metrics(result)
        status.metrics = metrics or None
        status.artifact_uri = result.get("modelUri")
        verdict = evaluate_gates(self.run.spec.gates, metrics or {})
        if metrics is None or not result.get("modelUri") or not result.get("sha256"):
            verdict = Verdict("JobFailed", f"training Job {job.name} reported no valid result")
        if verdict.reason is not None:
            return self._finish(verdict.reason, verdict.message, status)
        return self._register(observed, status, result)

    def _register(
        self, observed: TrainingObserved, status: TrainingRunStatus, result: dict[str, Any]
    ) -> Plan:
        if observed.registered is not None:
            return self._succeed(status, observed.registered, ())
        version = next_version(observed.taken_versions)
        try:
            manifest = self._model_version(status, result, version)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return self._finish(
                "JobFailed", f"invalid trainer result: {where}: {first['msg']}", status
            )
        return self._succeed(status, manifest["metadata"]["name"], (manifest,))

    def _model_version(
        self, status: TrainingRunStatus, result: dict[str, Any], version: int
    ) -> dict[str, Any]:
        spec = self.run.spec
        trainer = spec.trainer
        # Validated as one document, so an error names its place in the spec (signature.inputs).
        model_spec = ModelVersionSpec.model_validate(
            {
                "model": spec.model,
                "version": version,
                "artifact": {"uri": result["modelUri"], "sha256": result["sha256"]},
                "signature": result.get("signature") or None,
                "metrics": status.metrics,
                "lineage": {
                    "trainingRun": self.name,
                    "dataset": spec.dataset_ref.name,
                    "datasetDigest": status.dataset_digest,
                    "algorithm": str(trainer.algorithm) if trainer.algorithm else "custom",
                    "hyperparameters": trainer.hyperparameters,
                    "trainerImage": trainer.image or self.config.runtime_image,
                    "features": result.get("features"),
                },
            }
        )
        name = model_version_name(spec.model, version)
        return {
            "apiVersion": API_VERSION,
            "kind": ModelVersion.info.kind,
            "metadata": {
                "name": name,
                "namespace": self.run.metadata["namespace"],
                "labels": {
                    **MANAGED_BY,
                    MODEL_LABEL: spec.model,
                    RUN_UID_LABEL: str(self.run.metadata["uid"]),
                },
                "annotations": {
                    RUN_ANNOTATION: self.name,
                    VERIFIED_ANNOTATION: result["sha256"],
                },
            },
            "spec": to_wire(model_spec),
        }

    # ---- endings ----

    def _succeed(
        self, status: TrainingRunStatus, version_name: str, children: tuple[dict[str, Any], ...]
    ) -> Plan:
        status.phase = TrainingRunPhase.SUCCEEDED
        status.model_version = version_name
        status.completion_time = status.completion_time or format_timestamp(self.now)
        message = f"registered ModelVersion {version_name}"
        status.conditions = self._ready(True, "Succeeded", message)
        event = EventRecord(NORMAL, "ModelRegistered", message)
        return Plan(status=to_wire(status), children=children, events=(event,))

    def _finish(self, reason: str, message: str, status: TrainingRunStatus | None = None) -> Plan:
        status = (status or self.old).model_copy(
            update={
                "phase": TrainingRunPhase.FAILED,
                "completion_time": format_timestamp(self.now),
                "observed_generation": self.generation,
            }
        )
        status.conditions = self._ready(False, reason, message)
        return Plan(status=to_wire(status), events=(EventRecord(WARNING, reason, message),))

    def _ready(self, ready: bool, reason: str, message: str) -> list[Any]:
        return with_ready(
            self.old.conditions, ready, reason, message, generation=self.generation, now=self.now
        )


def _current_digest(dataset: Dataset) -> str:
    assert dataset.status is not None and dataset.status.current_version is not None
    return dataset.status.current_version.digest


def _metrics(result: dict[str, Any]) -> dict[str, float] | None:
    """The result's metrics as floats, or None when they are missing or not finite numbers."""
    raw = result.get("metrics")
    if not isinstance(raw, dict):
        return None
    try:
        metrics = {str(k): float(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        return None
    return metrics if all(math.isfinite(v) for v in metrics.values()) else None
