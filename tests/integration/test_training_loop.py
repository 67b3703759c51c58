"""The training loop end to end: `gyre operator` against the local cluster over HTTP.

Most scenarios run on a simulated kubelet, where rules decide how each profile, train and
verify pod ends (exit code, duration, termination message); the slow ones run the real
`gyre-runtime` processes on real data.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from sklearn.datasets import load_wine

from gyre_local.kubelet.kubelet import Behaviour

if TYPE_CHECKING:
    from conftest import Gyre, Operator

pytestmark = pytest.mark.cluster

TRAIN_COMPONENT = "app.kubernetes.io/component=train"
PROFILE_COMPONENT = "app.kubernetes.io/component=profile"
VERIFY_COMPONENT = "app.kubernetes.io/component=verify"
HYPERPARAMETERS = {"n_estimators": 50, "max_depth": 5}


def profiled(gyre: Gyre, text: str = "wine v1", rows: int = 178) -> str:
    """Profile pods of the namespace succeed with the digest of text; returns the digest."""
    digest = gyre.sha256_of(text)
    message = gyre.profile_success(digest, rows)
    gyre.simulate("profile", Behaviour(duration=0.1, termination_message=message))
    return digest


def trained(gyre: Gyre, model: str = "model", duration: float = 0.1, **metrics: float) -> str:
    """Train pods of the namespace succeed with these metrics; returns the model's sha256."""
    sha = gyre.sha256_of(model)
    message = gyre.train_success(sha, metrics or None)
    gyre.simulate("train", Behaviour(duration=duration, termination_message=message))
    return sha


def ready_dataset(gyre: Gyre, name: str = "wine") -> dict[str, Any]:
    """Create the wine Dataset and wait until it is Ready."""
    gyre.create(gyre.dataset_manifest(name))
    return gyre.wait_phase("Dataset", name, "Ready")


def registered_version(gyre: Gyre, name: str, version: int, sha256: str) -> dict[str, Any]:
    """A ModelVersion registered by a user, for a model trained elsewhere."""
    return {
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {
            "model": "wine",
            "version": version,
            "artifact": {
                "uri": f"s3://ml-models/wine/{version}/model.onnx",
                "format": "onnx",
                "sha256": sha256,
            },
            "metrics": {"accuracy": 0.94},
            "lineage": {"dataset": "wine", "algorithm": "gradient_boosting_classifier"},
        },
    }


# ---- simulated kubelet ----


def test_dataset_run_and_model_version_tell_the_whole_story(sim: Gyre) -> None:
    digest = profiled(sim, rows=178)
    sha = trained(sim, accuracy=0.97, f1_macro=0.96)

    dataset = ready_dataset(sim)
    assert dataset["status"]["currentVersion"]["digest"] == digest
    assert dataset["status"]["currentVersion"]["rows"] == 178
    assert dataset["status"]["currentVersion"]["profileUri"].endswith(f"/{digest}/profile.json")
    assert [v["digest"] for v in dataset["status"]["versions"]] == [digest]
    assert sim.ready(dataset)["status"] == "True"

    gates = [{"metric": "accuracy", "min": 0.9}, {"metric": "f1_macro", "min": 0.8}]
    sim.create(sim.run_manifest("wine-1", gates=gates))
    run = sim.wait_phase("TrainingRun", "wine-1", "Succeeded")
    status = run["status"]
    assert status["modelVersion"] == "wine-v1"
    assert status["datasetDigest"] == digest
    assert status["jobName"] == "wine-1-train"
    assert status["metrics"] == {"accuracy": 0.97, "f1_macro": 0.96}
    assert sim.ready(run)["reason"] == "Succeeded"

    version = sim.wait_phase("ModelVersion", "wine-v1", "Ready")
    spec = version["spec"]
    assert (spec["model"], spec["version"]) == ("wine", 1)
    assert spec["artifact"]["sha256"] == sha
    assert spec["lineage"] == {
        "trainingRun": "wine-1",
        "dataset": "wine",
        "datasetDigest": digest,
        "algorithm": "random_forest_classifier",
        "hyperparameters": HYPERPARAMETERS,
        "trainerImage": "gyre-runtime:0.1.0",
        "features": list(sim.WINE_FEATURES),
    }
    assert spec["metrics"] == {"accuracy": 0.97, "f1_macro": 0.96}
    assert version["status"]["signature"] == sim.SIGNATURE
    assert sim.ready(version)["reason"] == "Verified"

    # One profile Job and one train Job; a version the operator registered needs no verify Job.
    assert [j["metadata"]["name"] for j in sim.jobs(TRAIN_COMPONENT)] == ["wine-1-train"]
    assert len(sim.jobs(PROFILE_COMPONENT)) == 1
    assert sim.jobs(VERIFY_COMPONENT) == []

    # What `kubectl describe` shows on each object, in order.
    sim.wait_event_reasons("Dataset", "wine", ["ProfileStarted", "NewVersion"])
    sim.wait_event_reasons("TrainingRun", "wine-1", ["Started", "ModelRegistered"])
    sim.wait_event_reasons("ModelVersion", "wine-v1", ["Verified"])
    new_version = sim.events("Dataset", "wine")[1]
    assert new_version["type"] == "Normal"
    assert digest[:12] in new_version["message"] and "178 rows" in new_version["message"]
    registered = sim.events("TrainingRun", "wine-1")[1]
    assert registered["message"] == "registered ModelVersion wine-v1"
    assert registered["involvedObject"]["uid"] == run["metadata"]["uid"]


def test_gate_not_met_fails_the_run_and_registers_nothing(sim: Gyre) -> None:
    profiled(sim)
    trained(sim, accuracy=0.62, f1_macro=0.58)
    ready_dataset(sim)

    sim.create(sim.run_manifest("wine-1", gates=[{"metric": "accuracy", "min": 0.9}]))
    run = sim.wait_phase("TrainingRun", "wine-1", "Failed")
    condition = sim.ready(run)
    assert (condition["status"], condition["reason"]) == ("False", "GateNotMet")
    assert condition["message"] == "accuracy 0.62 < min 0.9"
    assert run["status"]["metrics"] == {"accuracy": 0.62, "f1_macro": 0.58}
    assert "modelVersion" not in run["status"]
    assert sim.objects("ModelVersion") == []
    warning = sim.events("TrainingRun", "wine-1")[-1]
    assert (warning["type"], warning["reason"]) == ("Warning", "GateNotMet")


def test_failed_training_job_fails_the_run_with_the_runtime_message(sim: Gyre) -> None:
    profiled(sim)
    message = "unknown hyperparameter 'x' for random_forest_classifier"
    sim.simulate(
        "train",
        Behaviour(
            duration=0.1,
            exit_code=1,
            termination_message=sim.failure("InvalidHyperparameter", message),
        ),
    )
    ready_dataset(sim)

    sim.create(sim.run_manifest("wine-1"))
    run = sim.wait_phase("TrainingRun", "wine-1", "Failed")
    condition = sim.ready(run)
    assert condition["reason"] == "JobFailed"
    assert condition["message"] == f"InvalidHyperparameter: {message}"
    assert run["status"]["jobName"] == "wine-1-train"
    assert sim.objects("ModelVersion") == []
    sim.wait_event_reasons("TrainingRun", "wine-1", ["Started", "JobFailed"])


def test_training_past_its_deadline_fails_with_deadline_exceeded(sim: Gyre) -> None:
    profiled(sim)
    trained(sim, duration=60.0)
    ready_dataset(sim)

    sim.create(sim.run_manifest("wine-1", activeDeadlineSeconds=2))
    run = sim.wait_phase("TrainingRun", "wine-1", "Failed", timeout=20)
    assert sim.ready(run)["reason"] == "DeadlineExceeded"
    [job] = sim.jobs(TRAIN_COMPONENT)
    assert 1 <= job["spec"]["activeDeadlineSeconds"] <= 2
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed"]
    assert failed and failed[0]["reason"] == "DeadlineExceeded"
    assert sim.objects("ModelVersion") == []


def test_run_created_before_its_dataset_waits_then_starts_by_itself(sim: Gyre) -> None:
    digest = sim.sha256_of("late data")
    success = sim.profile_success(digest)
    sim.simulate("profile", Behaviour(duration=1.0, termination_message=success))
    trained(sim)

    sim.create(sim.run_manifest("wine-1"))
    run = sim.wait("TrainingRun", "wine-1", lambda o: sim.reason(o) == "DatasetNotFound")
    assert sim.phase(run) == "Pending"
    assert sim.ready(run)["message"] == "Dataset wine does not exist"

    sim.create(sim.dataset_manifest())
    run = sim.wait("TrainingRun", "wine-1", lambda o: sim.reason(o) == "DatasetNotReady")
    assert sim.phase(run) == "Pending"
    assert sim.phase(sim.get("Dataset", "wine")) in ("Profiling", None)

    run = sim.wait_phase("TrainingRun", "wine-1", "Succeeded")
    assert run["status"]["datasetDigest"] == digest
    assert run["status"]["modelVersion"] == "wine-v1"
    sim.wait_event_reasons(
        "TrainingRun",
        "wine-1",
        [
            "DatasetNotFound",
            "DatasetNotReady",
            "Started",
            "ModelRegistered",
        ],
    )


def test_two_runs_of_one_model_finishing_together_get_two_versions(sim: Gyre) -> None:
    profiled(sim)
    trained(sim, duration=0.5)
    ready_dataset(sim)

    for name in ("wine-a", "wine-b"):
        sim.create(sim.run_manifest(name))
    runs = {n: sim.wait_phase("TrainingRun", n, "Succeeded") for n in ("wine-a", "wine-b")}

    versions = {v["metadata"]["name"]: v for v in sim.objects("ModelVersion")}
    assert sorted(versions) == ["wine-v1", "wine-v2"]
    assert {v["spec"]["version"] for v in versions.values()} == {1, 2}
    pointed = {n: r["status"]["modelVersion"] for n, r in runs.items()}
    assert sorted(pointed.values()) == ["wine-v1", "wine-v2"]
    for name, version in pointed.items():
        assert versions[version]["spec"]["lineage"]["trainingRun"] == name
        uid = versions[version]["metadata"]["labels"]["gyre.dev/training-run-uid"]
        assert uid == runs[name]["metadata"]["uid"]


def test_version_name_held_by_another_model_is_skipped(sim: Gyre) -> None:
    sha = sim.sha256_of("other model")
    sim.simulate("verify", Behaviour(duration=0.1, termination_message=sim.verify_success(sha)))
    other = registered_version(sim, "wine-v1", 1, sha)
    other["spec"]["model"] = "other"
    sim.create(other)
    profiled(sim)
    trained(sim)
    ready_dataset(sim)

    sim.create(sim.run_manifest("wine-1"))
    run = sim.wait("TrainingRun", "wine-1", lambda o: sim.phase(o) in ("Succeeded", "Failed"))
    assert sim.phase(run) == "Succeeded", run["status"]
    assert run["status"]["modelVersion"] == "wine-v2"
    version = sim.wait_phase("ModelVersion", "wine-v2", "Ready")
    assert (version["spec"]["model"], version["spec"]["version"]) == ("wine", 2)
    assert sim.must_get("ModelVersion", "wine-v1")["spec"]["model"] == "other"


def test_dataset_with_bad_data_fails_then_recovers_when_fixed(sim: Gyre) -> None:
    message = "column 'magnesium': value 'abc' is not numeric"
    bad = Behaviour(
        duration=0.1, exit_code=1, termination_message=sim.failure("InvalidData", message)
    )
    sim.simulate("profile", bad)
    trained(sim)
    sim.create(sim.dataset_manifest(uri="pvc://gyre-data/wine/wine.csv"))
    dataset = sim.wait_phase("Dataset", "wine", "Failed")
    condition = sim.ready(dataset)
    assert (condition["status"], condition["reason"]) == ("False", "InvalidData")
    assert condition["message"] == message
    assert "currentVersion" not in dataset["status"]
    warning = sim.events("Dataset", "wine")[-1]
    assert (warning["type"], warning["reason"], warning["message"]) == (
        "Warning",
        "InvalidData",
        message,
    )

    # A run on it waits: a failed Dataset is not Ready.
    sim.create(sim.run_manifest("wine-1"))
    run = sim.wait("TrainingRun", "wine-1", lambda o: sim.reason(o) == "DatasetNotReady")
    assert sim.ready(run)["message"] == "Dataset wine is Failed, not Ready"

    # The data is fixed at a new path: the spec changes, a new profile Job runs.
    digest = profiled(sim, "fixed wine")
    sim.patch("Dataset", "wine", {"spec": {"source": {"uri": "pvc://gyre-data/wine/fixed.csv"}}})
    dataset = sim.wait_phase("Dataset", "wine", "Ready")
    assert dataset["status"]["currentVersion"]["digest"] == digest
    assert dataset["status"]["observedGeneration"] == dataset["metadata"]["generation"] == 2
    assert sim.ready(dataset)["reason"] == "Profiled"
    assert len(sim.jobs(PROFILE_COMPONENT)) == 2
    sim.wait_event_reasons(
        "Dataset",
        "wine",
        [
            "ProfileStarted",
            "InvalidData",
            "ProfileStarted",
            "NewVersion",
        ],
    )

    # ... and the waiting run starts by itself on the fixed version.
    run = sim.wait_phase("TrainingRun", "wine-1", "Succeeded")
    assert run["status"]["datasetDigest"] == digest


def test_user_registered_versions_are_verified(sim: Gyre) -> None:
    claimed, actual = sim.sha256_of("claimed"), sim.sha256_of("actual")
    mismatch = f"sha256 of s3://ml-models/wine/100/model.onnx is {actual}, not {claimed}"
    reported = sim.failure("DigestMismatch", mismatch)
    sim.cluster.simulation.add(
        Behaviour(duration=0.1, exit_code=1, termination_message=reported),
        name_prefix="wine-v100-verify",
        namespace=sim.namespace,
    )
    good = sim.sha256_of("good")
    sim.cluster.simulation.add(
        Behaviour(duration=0.1, termination_message=sim.verify_success(good)),
        name_prefix="wine-v101-verify",
        namespace=sim.namespace,
    )

    sim.create(registered_version(sim, "wine-v100", 100, claimed))
    sim.create(registered_version(sim, "wine-v101", 101, good))

    bad = sim.wait_phase("ModelVersion", "wine-v100", "Failed")
    condition = sim.ready(bad)
    assert (condition["status"], condition["reason"]) == ("False", "DigestMismatch")
    assert condition["message"] == mismatch
    assert "signature" not in bad["status"]
    sim.wait_event_reasons("ModelVersion", "wine-v100", ["Verifying", "DigestMismatch"])

    verified = sim.wait_phase("ModelVersion", "wine-v101", "Ready")
    assert sim.ready(verified)["reason"] == "Verified"
    assert verified["status"]["signature"] == sim.SIGNATURE
    assert verified["status"]["verifiedAt"]
    assert "signature" not in verified["spec"]  # the operator never writes a user's spec
    sim.wait_event_reasons("ModelVersion", "wine-v101", ["Verifying", "Verified"])
    jobs = sorted(j["metadata"]["name"] for j in sim.jobs(VERIFY_COMPONENT))
    assert jobs == ["wine-v100-verify", "wine-v101-verify"]


def test_served_version_is_held_by_a_finalizer_until_nothing_serves_it(sim: Gyre) -> None:
    sha = sim.sha256_of("served")
    sim.simulate("verify", Behaviour(duration=0.1, termination_message=sim.verify_success(sha)))
    sim.create(registered_version(sim, "wine-v7", 7, sha))
    sim.wait_phase("ModelVersion", "wine-v7", "Ready")
    assert not sim.must_get("ModelVersion", "wine-v7")["metadata"].get("finalizers")

    sim.patch_status("ModelVersion", "wine-v7", {"servedBy": ["wine-svc"]})
    sim.wait(
        "ModelVersion",
        "wine-v7",
        lambda o: "gyre.dev/served" in (o["metadata"].get("finalizers") or []),
    )

    sim.delete("ModelVersion", "wine-v7")

    def blocked(obj: dict[str, Any]) -> bool:
        conditions = obj["status"].get("conditions") or []
        return any(c["type"] == "DeletionBlocked" and c["status"] == "True" for c in conditions)

    held = sim.wait("ModelVersion", "wine-v7", blocked)
    assert held["metadata"]["deletionTimestamp"]
    condition = next(c for c in held["status"]["conditions"] if c["type"] == "DeletionBlocked")
    assert "wine-svc" in condition["message"]
    assert sim.phase(held) == "Ready"
    warning = sim.events("ModelVersion", "wine-v7")[-1]
    assert (warning["type"], warning["reason"]) == ("Warning", "DeletionBlocked")

    sim.patch_status("ModelVersion", "wine-v7", {"servedBy": []})
    sim.wait_for_deletion("ModelVersion", "wine-v7")


def test_status_written_by_another_writer_right_after_creation_is_kept(sim: Gyre) -> None:
    """servedBy (written by whoever serves a version) survives the operator's first status."""
    sha = sim.sha256_of("served early")
    sim.simulate("verify", Behaviour(duration=0.2, termination_message=sim.verify_success(sha)))
    names = [f"wine-v{i}" for i in range(1, 6)]
    for number, name in enumerate(names, start=1):
        sim.create(registered_version(sim, name, number, sha))
        sim.patch_status("ModelVersion", name, {"servedBy": [f"svc-{number}"]})

    for number, name in enumerate(names, start=1):
        version = sim.wait_phase("ModelVersion", name, "Ready")
        assert version["status"]["servedBy"] == [f"svc-{number}"]
        assert version["status"]["signature"] == sim.SIGNATURE
        sim.wait(
            "ModelVersion",
            name,
            lambda o: "gyre.dev/served" in (o["metadata"].get("finalizers") or []),
        )


# ---- process kubelet: real gyre-runtime processes on real data ----


def write_wine_csv(gyre: Gyre, relative: str, bad_cell: tuple[int, str, str] | None = None) -> Path:
    """scikit-learn's wine data as CSV in the namespace's gyre-data claim; returns the file.

    bad_cell (row, column, text) puts text where a number belongs.
    """
    wine = load_wine()
    columns: dict[str, Any] = {
        name.replace("/", "_"): wine.data[:, i] for i, name in enumerate(wine.feature_names)
    }
    columns["target"] = wine.target
    if bad_cell is not None:
        row, column, text = bad_cell
        values = [repr(float(v)) for v in columns[column]]
        values[row] = text
        columns[column] = values
    path = gyre.cluster.kubelet.claim_directory(gyre.namespace, "gyre-data") / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(pa.table(columns), str(path))
    return path


def artifact_dir(operator: Operator) -> Path:
    """The operator's artifact root as a local directory."""
    return Path(operator.artifact_root.removeprefix("file://"))


WINE_SIGNATURE = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 13]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ],
}


@pytest.mark.slow
def test_real_wine_loop_profiles_trains_and_registers(
    proc: Gyre, process_operator: Operator
) -> None:
    csv = write_wine_csv(proc, "wine/wine.csv")
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    proc.create(proc.dataset_manifest())
    gates = [{"metric": "accuracy", "min": 0.85}, {"metric": "f1_macro", "min": 0.8}]
    proc.create(proc.run_manifest("wine-real", gates=gates))

    version = proc.wait_phase("ModelVersion", "wine-v1", "Ready", timeout=120)
    dataset = proc.must_get("Dataset", "wine")
    assert dataset["status"]["currentVersion"]["digest"] == digest
    assert dataset["status"]["currentVersion"]["rows"] == 178
    run = proc.wait_phase("TrainingRun", "wine-real", "Succeeded")
    assert run["status"]["modelVersion"] == "wine-v1"
    assert run["status"]["metrics"]["accuracy"] >= 0.85
    assert version["status"]["signature"] == WINE_SIGNATURE
    assert version["spec"]["signature"] == WINE_SIGNATURE
    assert version["spec"]["lineage"]["datasetDigest"] == digest
    assert version["spec"]["lineage"]["features"] == list(proc.WINE_FEATURES)

    root = artifact_dir(process_operator)
    profile_dir = root / "datasets" / "wine" / digest
    assert json.loads((profile_dir / "profile.json").read_text())
    assert (profile_dir / "sample.parquet").stat().st_size > 0
    model_uri = version["spec"]["artifact"]["uri"]
    model = Path(model_uri.removeprefix("file://"))
    assert model.is_relative_to(root / "models" / "wine")
    assert model.name == "model.onnx"
    assert hashlib.sha256(model.read_bytes()).hexdigest() == version["spec"]["artifact"]["sha256"]
    metadata = json.loads((model.parent / "metadata.json").read_text())
    assert metadata["signature"] == WINE_SIGNATURE


@pytest.mark.slow
def test_real_bad_data_names_the_column(proc: Gyre) -> None:
    write_wine_csv(proc, "wine/wine.csv", bad_cell=(5, "magnesium", "abc"))
    proc.create(proc.dataset_manifest())
    dataset = proc.wait_phase("Dataset", "wine", "Failed", timeout=60)
    condition = proc.ready(dataset)
    assert condition["status"] == "False"
    assert condition["reason"] == "InvalidData"
    assert condition["message"].startswith("column 'magnesium': value 'abc' is not numeric")
    assert "\n" not in condition["message"]


CUSTOM_TRAINER = textwrap.dedent(
    """
    import json, os
    from pathlib import Path
    import numpy as np, pyarrow.csv as pacsv
    from sklearn.linear_model import LogisticRegression
    from skl2onnx import to_onnx

    path = os.environ.get("GYRE_DATASET_PATH")  # a local copy, where the Job provides one
    if not path:
        claim, _, relative = os.environ["GYRE_DATASET_URI"].removeprefix("pvc://").partition("/")
        path = os.path.join(os.environ["GYRE_PVC_" + claim.upper().replace("-", "_")], relative)
    table = pacsv.read_csv(path)
    features = json.loads(os.environ["GYRE_FEATURES"])
    x = np.column_stack([table[f].to_numpy() for f in features]).astype(np.float32)
    y = table[os.environ["GYRE_TARGET"]].to_numpy()
    model = LogisticRegression(max_iter=5000).fit(x, y)
    out = Path(os.environ["GYRE_OUTPUT_DIR"])
    onnx = to_onnx(model, x[:1], options={"zipmap": False})
    (out / "model.onnx").write_bytes(onnx.SerializeToString())
    (out / "metrics.json").write_text(json.dumps({"accuracy": float(model.score(x, y))}))
    """
)


@pytest.mark.slow
def test_custom_trainer_image_is_published_and_registered(proc: Gyre) -> None:
    write_wine_csv(proc, "wine/wine.csv")
    proc.create(proc.dataset_manifest())
    manifest = proc.run_manifest("wine-custom", gates=[{"metric": "accuracy", "min": 0.8}])
    manifest["spec"]["trainer"] = {
        "image": "local/python",
        "command": ["python", "-c", CUSTOM_TRAINER],
    }
    proc.create(manifest)

    run = proc.wait(
        "TrainingRun", "wine-custom", lambda o: proc.phase(o) in ("Succeeded", "Failed"), 120
    )
    assert proc.phase(run) == "Succeeded", run["status"]
    assert run["status"]["metrics"]["accuracy"] >= 0.8
    version = proc.wait_phase("ModelVersion", run["status"]["modelVersion"], "Ready")
    lineage = version["spec"]["lineage"]
    assert lineage["algorithm"] == "custom"
    assert lineage["trainerImage"] == "local/python"
    assert lineage["trainingRun"] == "wine-custom"
    signature = version["status"]["signature"]
    assert signature["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 13]}]
