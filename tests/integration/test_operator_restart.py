"""The operator killed with SIGKILL at any moment and started again: no duplicate, nothing lost.

Children have deterministic names and a ModelVersion is found by its run's uid label, so a
restarted operator finishes what the killed one started: one Job per run, one ModelVersion
per run, distinct version numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import watch

from gyre_local.cluster import LocalCluster, running_cluster, wait_for
from gyre_local.kubelet.kubelet import Behaviour

if TYPE_CHECKING:
    from conftest import Gyre, Operator

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO_CRDS = Path(__file__).resolve().parents[2] / "crds"
RUN_UID_LABEL = "gyre.dev/training-run-uid"
COMPONENT = "app.kubernetes.io/component"
TRAIN_JOBS = f"{COMPONENT}=train"


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    """A simulated cluster of the test's own: the test kills its operator."""
    with running_cluster(kubelet="simulated", crds=[REPO_CRDS]) as running:
        yield running


def prepare(gyre: Gyre, train_seconds: float) -> None:
    """Profile and train pods succeed; a Ready wine Dataset."""
    digest = gyre.sha256_of("wine")
    profile = gyre.profile_success(digest)
    gyre.simulate("profile", Behaviour(duration=0.1, termination_message=profile))
    message = gyre.train_success(gyre.sha256_of("model"))
    gyre.simulate("train", Behaviour(duration=train_seconds, termination_message=message))
    gyre.create(gyre.dataset_manifest())
    gyre.wait_phase("Dataset", "wine", "Ready")


def succeeded(gyre: Gyre) -> int:
    """How many runs of the namespace Succeeded."""
    return sum(gyre.phase(r) == "Succeeded" for r in gyre.objects("TrainingRun"))


def assert_one_job_and_one_version_per_run(gyre: Gyre, names: list[str]) -> None:
    """Every run Succeeded with a Job and a ModelVersion of its own; versions 1..n."""
    count = len(names)

    def all_done() -> bool:
        runs = gyre.objects("TrainingRun")
        return len(runs) == count and all(gyre.phase(r) in ("Succeeded", "Failed") for r in runs)

    wait_for(all_done, timeout=60)
    runs = {r["metadata"]["name"]: r for r in gyre.objects("TrainingRun")}
    not_succeeded = {n: r["status"] for n, r in runs.items() if gyre.phase(r) != "Succeeded"}
    assert not_succeeded == {}

    jobs = gyre.jobs()
    train_jobs = [j for j in jobs if j["metadata"]["labels"].get(COMPONENT) == "train"]
    assert sorted(j["metadata"]["name"] for j in train_jobs) == sorted(f"{n}-train" for n in names)
    assert len(jobs) == count + 1  # and the Dataset's one profile Job
    for job in train_jobs:
        [owner] = job["metadata"]["ownerReferences"]
        run = runs[owner["name"]]
        assert owner["uid"] == run["metadata"]["uid"]
        assert job["metadata"]["name"] == run["status"]["jobName"]

    versions = gyre.objects("ModelVersion")
    assert sorted(v["spec"]["version"] for v in versions) == list(range(1, count + 1))
    assert sorted(v["metadata"]["name"] for v in versions) == sorted(
        f"wine-v{i}" for i in range(1, count + 1)
    )
    by_uid: dict[str, list[str]] = {}
    for version in versions:
        by_uid.setdefault(version["metadata"]["labels"][RUN_UID_LABEL], []).append(
            version["metadata"]["name"]
        )
    for name, run in runs.items():
        mine = by_uid.get(run["metadata"]["uid"], [])
        assert mine == [run["status"]["modelVersion"]], (name, mine)
        version = next(v for v in versions if v["metadata"]["name"] == mine[0])
        assert version["spec"]["lineage"]["trainingRun"] == name
    wait_for(lambda: all(gyre.phase(v) == "Ready" for v in gyre.objects("ModelVersion")))


def warnings_about_runs(gyre: Gyre, names: list[str]) -> dict[str, list[str]]:
    """The Warning Events about each run that got any."""
    found: dict[str, list[str]] = {}
    for name in names:
        reasons = [e["reason"] for e in gyre.events("TrainingRun", name) if e["type"] == "Warning"]
        if reasons:
            found[name] = reasons
    return found


def test_twenty_runs_survive_sigkills_at_every_stage(
    cluster: LocalCluster,
    make_operator: Callable[[LocalCluster], Operator],
    make_gyre: Callable[[LocalCluster], Gyre],
) -> None:
    gyre = make_gyre(cluster)
    operator = make_operator(cluster)
    prepare(gyre, train_seconds=1.5)
    names = [f"wine-{i:02d}" for i in range(1, 21)]

    for name in names[:10]:
        gyre.create(gyre.run_manifest(name))
    wait_for(lambda: len(gyre.jobs(TRAIN_JOBS)) >= 3)
    operator.restart()  # while Jobs are being created
    for name in names[10:]:
        gyre.create(gyre.run_manifest(name))
    wait_for(lambda: gyre.objects("ModelVersion"), timeout=30)
    operator.restart()  # while versions are being registered
    wait_for(lambda: succeeded(gyre) >= 12, timeout=30)
    operator.restart()  # with some runs finished and some still training

    assert_one_job_and_one_version_per_run(gyre, names)
    assert operator.starts == 4
    assert warnings_about_runs(gyre, names) == {}


def kill_when_added(gyre: Gyre, operator: Operator, kind: str, name: str) -> None:
    """SIGKILL the operator the moment the object kind/name appears (watched, not polled)."""
    if kind == "Job":
        lister: Any = gyre.batch.list_namespaced_job
        args: tuple[Any, ...] = (gyre.namespace,)
    else:
        lister = gyre.custom.list_namespaced_custom_object
        args = ("gyre.dev", "v1alpha1", gyre.namespace, "modelversions")
    stream = watch.Watch()
    for event in stream.stream(lister, *args, timeout_seconds=30):
        obj = event["object"]
        metadata = obj["metadata"] if isinstance(obj, dict) else obj.metadata.to_dict()
        if event["type"] == "ADDED" and metadata.get("name") == name:
            operator.kill()
            stream.stop()
            return
    raise AssertionError(f"{kind} {name} never appeared")


def test_kills_right_after_a_job_or_a_version_is_created(
    cluster: LocalCluster,
    make_operator: Callable[[LocalCluster], Operator],
    make_gyre: Callable[[LocalCluster], Gyre],
) -> None:
    gyre = make_gyre(cluster)
    operator = make_operator(cluster)
    prepare(gyre, train_seconds=0.3)
    names = [f"wine-{i}" for i in range(1, 7)]
    windows = {"job before status": 0, "version before status": 0}

    for number, name in enumerate(names, start=1):
        gyre.create(gyre.run_manifest(name))
        kill_when_added(gyre, operator, "Job", f"{name}-train")
        if not (gyre.must_get("TrainingRun", name).get("status") or {}).get("jobName"):
            windows["job before status"] += 1
        operator.start()
        kill_when_added(gyre, operator, "ModelVersion", f"wine-v{number}")
        if not (gyre.must_get("TrainingRun", name).get("status") or {}).get("modelVersion"):
            windows["version before status"] += 1
        operator.start()
        gyre.wait_phase("TrainingRun", name, "Succeeded")

    assert_one_job_and_one_version_per_run(gyre, names)
    assert warnings_about_runs(gyre, names) == {}
    print("kills that landed between a create and the status write:", windows)
