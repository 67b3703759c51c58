"""Scenario: the whole loop. Production traffic moves, Gyre notices, retrains on the new
labelled data and rolls the new model out as a canary, with nobody touching anything.

Dataset v1 -> TrainingRun -> ModelVersion v1 -> InferenceService serves it; a load generator
sends wine rows; once a check has found no drift, the traffic shifts (seven features move by
1.5 standard deviations) and shifted labelled data lands at the Dataset's source -> Dataset
v2 -> the DriftMonitor reports Drifted on the shifted features only -> a TrainingRun on v2 ->
ModelVersion v2 -> canary -> promoted, with zero failed requests throughout. With steady
traffic, the checks stay Healthy and nothing is retrained.

The examples are applied with the demo's timings (`gyre local demo` runs the same loop).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from targets import CLAIM, REPO, Target, wine_csv

from gyre_local.demo import DEMO_OVERRIDES, manifests, with_overrides
from gyre_local.workload import SHIFTED_FEATURES, LoadGenerator

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LOOP_EXAMPLES = ("Dataset", "TrainingRun", "InferenceService", "DriftMonitor")
NEW_DATA_ROWS = 200
LOAD_RATE = 40.0


def status_of(target: Target, resource: str) -> dict[str, Any]:
    """An object's status as kubectl returns it (empty when it has none yet)."""
    found = target.kubectl("get", resource, "-o", "json", check=False)
    if found.returncode != 0:
        return {}
    status: dict[str, Any] = json.loads(found.stdout).get("status") or {}
    return status


def wait_status(
    target: Target,
    resource: str,
    holds: Callable[[dict[str, Any]], bool],
    timeout: float,
    log: Path,
) -> dict[str, Any]:
    """Poll an object's status until `holds` is true; fail with the status and the
    operator's log when it never is."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = status_of(target, resource)
        if holds(status):
            return status
        time.sleep(0.5)
    shown = json.dumps(status, indent=1)[:4000]
    raise AssertionError(
        f"{resource}: not there in {timeout} s: {shown}\n{log.read_text()[-3000:]}"
    )


@contextmanager
def serving_loop(target: Target, log: Path, tmp_path: Path) -> Iterator[LoadGenerator]:
    """The examples applied with demo timings on wine data, the model served, and a load
    generator sending it wine rows; yields the load generator."""
    target.install_crds()
    target.apply(CLAIM, tmp_path, "claim")
    target.land("wine/wine.csv", wine_csv(tmp_path), tmp_path, "write-wine")
    examples = [
        obj
        for obj in with_overrides(manifests(REPO / "examples"), DEMO_OVERRIDES)
        if obj["kind"] in LOOP_EXAMPLES
    ]
    target.apply(yaml.safe_dump_all(examples), tmp_path, "examples")
    served = wait_status(target, "gisvc/wine", lambda s: s.get("phase") == "Ready", 180, log)
    assert served["stableVersion"] == 1
    with (
        target.service_url("wine", 80) as url,
        LoadGenerator(url, "wine", rate=LOAD_RATE, seed=1) as load,
    ):
        yield load


def first_healthy_check(target: Target, log: Path) -> dict[str, Any]:
    return wait_status(target, "gdm/wine", lambda s: s.get("phase") == "Healthy", 150, log)


def test_shifted_traffic_and_new_data_retrain_and_promote_a_new_model(
    runtime_target: Target, operator: Path, tmp_path: Path
) -> None:
    target = runtime_target
    started = time.monotonic()
    with serving_loop(target, operator, tmp_path) as load:
        healthy = first_healthy_check(target, operator)
        assert not any(f["drifted"] for f in healthy["lastCheck"]["features"])

        load.shift(True)
        new_data = wine_csv(tmp_path, shifted=True, rows=NEW_DATA_ROWS)
        target.land("wine/wine.csv", new_data, tmp_path, "write-shifted-wine")

        retrained = wait_status(
            target, "gdm/wine", lambda s: bool(s.get("retrainRuns")), 180, operator
        )
        (record,) = retrained["retrainRuns"]
        check = retrained["lastCheck"]
        assert check["id"] == record["checkId"]
        assert check["verdict"] == "Drift"
        drifted = {f["name"] for f in check["features"] if f["drifted"]}
        assert drifted == set(SHIFTED_FEATURES)
        dataset = status_of(target, "gds/wine")
        assert record["datasetDigest"] == dataset["currentVersion"]["digest"]
        assert dataset["currentVersion"]["rows"] == NEW_DATA_ROWS

        promoted = wait_status(
            target,
            "gisvc/wine",
            lambda s: s.get("stableVersion") == 2 and s.get("phase") == "Ready"
            and not s.get("canaryVersion"),
            240,
            operator,
        )  # fmt: skip
        assert not promoted.get("failedVersions")
        figures = load.figures()
    elapsed = time.monotonic() - started
    assert figures.failed == 0, figures.last_error
    assert figures.ok > 0
    run = status_of(target, f"gtr/{record['name']}")
    assert run["phase"] == "Succeeded"
    assert run["datasetDigest"] == record["datasetDigest"]
    lineage = json.loads(target.kubectl("get", "gmv/wine-v2", "-o", "json").stdout)["spec"]
    assert lineage["lineage"]["trainingRun"] == record["name"]
    story = target.kubectl("get", "events", "--field-selector",
                           "involvedObject.name=wine,involvedObject.kind=DriftMonitor",
                           "-o", "jsonpath={.items[*].reason}").stdout.split()  # fmt: skip
    for reason in ("NoDrift", "DriftDetected", "RunCreated"):
        assert reason in story
    print(f"loop closed in {elapsed:.0f} s: {figures.ok} requests answered, none failed")


def test_steady_traffic_stays_healthy_and_retrains_nothing(
    runtime_target: Target, operator: Path, tmp_path: Path
) -> None:
    target = runtime_target
    with serving_loop(target, operator, tmp_path) as load:
        first_healthy_check(target, operator)
        steady = wait_status(
            target, "gdm/wine", lambda s: len(s.get("history") or []) >= 4, 150, operator
        )
        figures = load.figures()
    verdicts = [record.get("verdict") for record in steady["history"]]
    assert set(verdicts) == {"NoDrift"}, verdicts
    assert steady["phase"] == "Healthy"
    assert not steady.get("retrainRuns")
    runs = json.loads(target.kubectl("get", "gtr", "-o", "json").stdout)["items"]
    assert [r["metadata"]["name"] for r in runs] == ["wine-1"]
    assert figures.failed == 0, figures.last_error
