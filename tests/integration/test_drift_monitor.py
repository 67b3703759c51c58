"""The DriftMonitor controller: `gyre operator` against the local cluster over HTTP.

On the simulated kubelet, rules decide what each check, profile and train pod reports (the
runtime's contract), so the controller's decisions play out with real Jobs, real watch
events and real status writes: NoFreshData, then one retraining run once the Dataset has a
new version, never a second one while it is on its way to traffic; check failures become a
condition and recover; a restarted operator runs no slot twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from gyre_local.cluster import wait_for
from gyre_local.kubelet.kubelet import Behaviour
from gyre_operator.kube import Kube, Refused

if TYPE_CHECKING:
    from conftest import Gyre, Operator

pytestmark = pytest.mark.cluster

DRIFT_COMPONENT = "app.kubernetes.io/component=drift"
MONITOR = "wine-drift"
SHIFTED = ("alcohol", "malic_acid", "flavanoids", "color_intensity", "hue", "proline", "ash")


def check_result(verdict: str, drifted: tuple[str, ...] = SHIFTED) -> str:
    """What `gyre-runtime drift` reports: every wine feature, those named drifted."""
    features = [
        {"name": f, "method": "psi", "score": 0.9 if f in drifted else 0.02,
         "drifted": verdict == "Drift" and f in drifted,
         "scores": {"psi": 0.9 if f in drifted else 0.02, "ks": 0.5}}
        for f in ("alcohol", "malic_acid", "ash", "flavanoids", "color_intensity", "hue",
                  "proline", "magnesium")
    ]  # fmt: skip
    return json.dumps(
        {
            "verdict": verdict,
            "samples": 900,
            "driftedFeatureShare": 0.875 if verdict == "Drift" else 0.0,
            "reportUri": "file:///artifacts/drift/wine-drift/x.json",
            "features": features,
        }
    )


def checks_report(gyre: Gyre, verdict: str, duration: float = 0.1) -> None:
    gyre.simulate("drift", Behaviour(duration=duration, termination_message=check_result(verdict)))


def profiles(gyre: Gyre, text: str) -> str:
    digest = gyre.sha256_of(text)
    gyre.simulate(
        "profile", Behaviour(duration=0.1, termination_message=gyre.profile_success(digest))
    )
    return digest


def serving_model(gyre: Gyre, **dataset: Any) -> str:
    """Dataset wine (v1) -> TrainingRun wine-1 -> wine-v1 served by InferenceService wine."""
    digest = profiles(gyre, "wine v1")
    sha = gyre.sha256_of("model")
    gyre.simulate("train", Behaviour(duration=0.1, termination_message=gyre.train_success(sha)))
    gyre.create(gyre.dataset_manifest(**dataset))
    gyre.wait_phase("Dataset", "wine", "Ready")
    gyre.create(gyre.run_manifest("wine-1", gates=[{"metric": "accuracy", "min": 0.9}]))
    gyre.wait_phase("ModelVersion", "wine-v1", "Ready")
    gyre.create(inference_service())
    gyre.wait(
        "InferenceService", "wine", lambda o: (o.get("status") or {}).get("stableVersion") == 1
    )
    return digest


def inference_service() -> dict[str, Any]:
    return {
        "kind": "InferenceService",
        "metadata": {"name": "wine"},
        "spec": {"model": "wine", "track": "latest", "runtime": {"replicas": 1}},
    }


def monitor(interval: str = "2s", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "DriftMonitor",
        "metadata": {"name": MONITOR},
        "spec": {
            "inferenceServiceRef": {"name": "wine"},
            "interval": interval,
            "retrain": {"enabled": True, "cooldown": "1h", "maxRunsPerDay": 3},
            **spec,
        },
    }


def check_ids(gyre: Gyre) -> list[str]:
    return [
        j["metadata"]["annotations"]["gyre.dev/drift-check"] for j in gyre.jobs(DRIFT_COMPONENT)
    ]


def condition(obj: dict[str, Any] | None, kind: str) -> tuple[str, str]:
    for found in (obj or {}).get("status", {}).get("conditions") or []:
        if found["type"] == kind:
            return found["status"], found["reason"]
    return "", ""


def test_drift_is_reported_until_fresh_data_lands_then_retrains_exactly_once(
    sim: Gyre, sim_operator: Operator
) -> None:
    serving_model(sim, refreshInterval="3s")
    checks_report(sim, "Drift")
    sim.create(monitor())

    # The data moved, but the Dataset has nothing newer than what wine-v1 learned from.
    no_fresh_data = ("True", "NoFreshData")
    drifted = sim.wait("DriftMonitor", MONITOR, lambda o: condition(o, "Drifted") == no_fresh_data)
    assert drifted["status"]["phase"] == "Drifted"
    assert not drifted["status"].get("retrainRuns")
    sim.wait_event("DriftMonitor", MONITOR, "NoFreshData")
    check = drifted["status"]["lastCheck"]
    assert sorted(f["name"] for f in check["features"] if f["drifted"]) == sorted(SHIFTED)

    # New labelled data lands: the next profile finds a new version; the next drifted check
    # starts one TrainingRun on it, labelled with the monitor and the check.
    fresh = profiles(sim, "wine v2")
    sim.wait("Dataset", "wine", lambda o: o["status"]["currentVersion"]["digest"] == fresh)
    started = sim.wait("DriftMonitor", MONITOR, lambda o: bool(o["status"].get("retrainRuns")),
                       timeout=30)  # fmt: skip
    (record,) = started["status"]["retrainRuns"]
    assert record["datasetDigest"] == fresh
    run = sim.must_get("TrainingRun", record["name"])
    labels = run["metadata"]["labels"]
    assert labels["gyre.dev/drift-monitor"] == MONITOR
    assert labels["gyre.dev/drift-check"] == record["checkId"]
    assert run["spec"]["datasetRef"] == {"name": "wine", "digest": fresh}
    assert run["spec"]["gates"] == [{"metric": "accuracy", "min": 0.9}]
    assert run["spec"]["trainer"]["algorithm"] == "random_forest_classifier"
    sim.wait_phase("ModelVersion", "wine-v2", "Ready")

    # More drifted checks while wine-v2 is on its way: never a second run.
    on_its_way = ("RollingOut", "RetrainInFlight")
    sim.wait("DriftMonitor", MONITOR, lambda o: condition(o, "Retraining")[1] in on_its_way)
    first = len(started["status"]["history"])
    sim.wait(
        "DriftMonitor", MONITOR, lambda o: len(o["status"]["history"]) >= first + 2, timeout=20
    )
    assert len(sim.objects("TrainingRun")) == 2
    assert sim_operator.metric("gyre_drift_retrain_triggers_total", monitor=MONITOR) == 1
    score = sim_operator.metric(
        "gyre_drift_score", monitor=MONITOR, feature="alcohol", method="psi"
    )
    assert score == pytest.approx(0.9)
    # Each slot ran once; old check Jobs are cleaned up.
    ids = check_ids(sim)
    assert len(ids) == len(set(ids)) <= 4


def test_a_missing_service_and_a_failing_check_are_conditions_that_recover(sim: Gyre) -> None:
    sim.create(monitor())
    missing = sim.wait("DriftMonitor", MONITOR,
                       lambda o: sim.reason(o) == "InferenceServiceNotFound")  # fmt: skip
    assert sim.ready(missing)["status"] == "False"
    sim.wait_event("DriftMonitor", MONITOR, "InferenceServiceNotFound")

    failure = sim.failure("FeatureMissing", "feature proline is not in the request logs")
    sim.simulate("drift", Behaviour(duration=0.1, exit_code=1, termination_message=failure))
    serving_model(sim)
    failed = sim.wait_phase("DriftMonitor", MONITOR, "Failed", timeout=30)
    ready = sim.ready(failed)
    assert (ready["status"], ready["reason"]) == ("False", "FeatureMissing")
    assert "proline" in ready["message"]
    sim.wait_event("DriftMonitor", MONITOR, "CheckFailed")

    checks_report(sim, "NoDrift")
    healthy = sim.wait_phase("DriftMonitor", MONITOR, "Healthy", timeout=20)
    assert sim.ready(healthy)["status"] == "True"
    assert condition(healthy, "Drifted") == ("False", "NoDrift")
    assert sim.objects("TrainingRun") and len(sim.objects("TrainingRun")) == 1


def test_a_restarted_operator_runs_no_slot_twice_and_starts_no_second_run(
    sim: Gyre, sim_operator: Operator
) -> None:
    serving_model(sim, refreshInterval="2s")
    profiles(sim, "wine v2")
    sim.wait("Dataset", "wine", lambda o: len(o["status"].get("versions") or []) == 2, timeout=20)
    # Slow checks: the operator dies while one runs, and while the run it started trains.
    checks_report(sim, "Drift", duration=1.5)
    sim.create(monitor(interval="1s"))
    wait_for(lambda: any(j.get("status", {}).get("active") for j in sim.jobs(DRIFT_COMPONENT)),
             timeout=20)  # fmt: skip
    sim_operator.kill()
    time.sleep(2.5)  # slots pass while it is down
    sim_operator.start()
    sim.wait("DriftMonitor", MONITOR, lambda o: bool(o["status"].get("retrainRuns")), timeout=30)
    sim_operator.restart()
    sim.wait("DriftMonitor", MONITOR, lambda o: len(o["status"].get("history") or []) >= 3,
             timeout=30)  # fmt: skip
    status = sim.must_get("DriftMonitor", MONITOR)["status"]
    ids = [r["id"] for r in status["history"]]
    assert len(ids) == len(set(ids))
    assert Counter(check_ids(sim)).most_common(1)[0][1] == 1
    runs = [r for r in sim.objects("TrainingRun") if r["metadata"]["name"] != "wine-1"]
    assert len(runs) == 1


def test_the_api_server_refusing_a_child_is_a_refusal_not_an_error(sim: Gyre) -> None:
    kube = Kube.connect(str(sim.cluster.kubeconfig_path))
    invalid = {
        "apiVersion": "gyre.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": "bad", "namespace": sim.namespace},
        "spec": {"datasetRef": {"name": "wine"}, "model": "Not A DNS Label", "trainer": {}},
    }
    with pytest.raises(Refused) as refused:
        asyncio.run(kube.create(invalid))
    assert "spec.model" in refused.value.message
