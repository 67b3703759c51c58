"""Serving and canary rollouts against the local cluster with the process kubelet.

Real `gyre-runtime serve` pods behind the Service proxy, real ONNX models registered as
ModelVersions, a load generator on the Service URL: a first version becomes Ready and
answers; a second good version goes through the steps and is promoted with zero failed
requests; a broken version (one that fails at inference on real inputs) is rolled back
within failureLimit + 1 intervals while the stable version keeps answering; `gyre rollout
abort`, `retry` and `promote --full` work as Argo Rollouts users expect.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from serving_models import ROWS, classifier, failing_model

from gyre_local.cluster import wait_for

if TYPE_CHECKING:
    from conftest import Gyre, Operator

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


class Load:
    """A load generator on the Service URL: one keep-alive client in a thread, counting
    responses by status (0 for a connection that failed)."""

    def __init__(self, url: str, model: str) -> None:
        self.address = urllib.parse.urlsplit(url)
        self.path = f"/v2/models/{model}/infer"
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        connection = self._connect()
        row = 0
        while not self._stop.is_set():
            body = json.dumps(
                {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [1, 13],
                            "datatype": "FP32",
                            "data": ROWS[row % len(ROWS)].tolist(),
                        }
                    ]
                }
            )
            row += 1
            try:
                connection.request("POST", self.path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                self.statuses[response.status] += 1
                if response.status == 200:
                    self.versions[json.loads(payload)["model_version"]] += 1
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = self._connect()
            except (OSError, http.client.HTTPException):
                self.statuses[0] += 1
                connection.close()
                connection = self._connect()
            time.sleep(0.005)

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            self.address.hostname or "127.0.0.1", self.address.port, timeout=10
        )

    def failures(self) -> int:
        """Requests that did not get a 200."""
        return sum(n for status, n in self.statuses.items() if status != 200)


def register(gyre: Gyre, operator: Operator, version: int, model: bytes) -> str:
    """Put a model file in the artifact store and register it as ModelVersion wine-v<N>."""
    root = Path(urllib.parse.urlsplit(operator.artifact_root).path)
    path = root / "models" / gyre.namespace / f"wine-{version}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model)
    name = f"wine-v{version}"
    gyre.create(
        {
            "kind": "ModelVersion",
            "metadata": {"name": name},
            "spec": {
                "model": "wine",
                "version": version,
                "artifact": {
                    "uri": path.as_uri(),
                    "format": "onnx",
                    "sha256": hashlib.sha256(model).hexdigest(),
                },
                "lineage": {"dataset": "wine", "features": list(gyre.WINE_FEATURES)},
            },
        }
    )
    gyre.wait_phase("ModelVersion", name, "Ready", timeout=60)
    return name


def service_manifest(**rollout: Any) -> dict[str, Any]:
    """InferenceService `wine` tracking the latest version, with a fast canary."""
    analysis = {
        "interval": "1s",
        "maxErrorRate": 0.05,
        "minRequests": 5,
        "failureLimit": 1,
        "stepDeadline": "60s",
        **rollout.pop("analysis", {}),
    }
    return {
        "kind": "InferenceService",
        "metadata": {"name": "wine"},
        "spec": {
            "model": "wine",
            "track": "latest",
            "runtime": {"replicas": 2},
            "rollout": {
                "steps": rollout.pop("steps", [{"weight": 50, "pause": "3s"}]),
                "analysis": analysis,
            },
            "requestLogging": {"enabled": False},
        },
    }


def status_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The status of an object, empty when it has none."""
    return dict(obj.get("status") or {})


def service_url(gyre: Gyre) -> str:
    """The local URL of Service `wine`."""
    cluster = gyre.cluster
    return wait_for(lambda: cluster.service_url(gyre.namespace, "wine"), timeout=20)


def rollout(gyre: Gyre, *args: str) -> subprocess.CompletedProcess[str]:
    """`gyre rollout ARGS -n <namespace>` against the cluster."""
    argv = [sys.executable, "-m", "gyre_operator.cli", "rollout", *args, "-n", gyre.namespace]
    argv += ["--kubeconfig", str(gyre.cluster.kubeconfig_path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_versions_roll_out_as_canaries_promoted_or_rolled_back(
    proc: Gyre, process_operator: Operator
) -> None:
    gyre = proc
    register(gyre, process_operator, 1, classifier(3))
    gyre.create(service_manifest())
    first = gyre.wait("InferenceService", "wine", lambda o: gyre.phase(o) == "Ready", 90)
    assert status_of(first)["stableVersion"] == 1
    assert gyre.ready(first)["reason"] == "Serving"
    assert status_of(gyre.must_get("ModelVersion", "wine-v1"))["servedBy"] == ["wine"]

    with Load(service_url(gyre), "wine") as load:
        wait_for(lambda: load.versions["1"] >= 20, timeout=30)
        register(gyre, process_operator, 2, classifier(5))
        promoted = gyre.wait(
            "InferenceService", "wine", lambda o: status_of(o).get("stableVersion") == 2, 120
        )
        wait_for(lambda: load.versions["2"] >= 20, timeout=30)
    assert load.failures() == 0, load.statuses
    status = status_of(promoted)
    assert status.get("canaryVersion") is None and status["canaryWeight"] == 0
    progressing = next(c for c in status["conditions"] if c["type"] == "RolloutProgressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "Promoted")
    gyre.wait_event("InferenceService", "wine", "Promoted")
    reasons = gyre.event_reasons("InferenceService", "wine")
    assert reasons.index("RolloutStarted") < reasons.index("Promoting") < reasons.index("Promoted")
    wait_for(
        lambda: not status_of(gyre.must_get("ModelVersion", "wine-v1")).get("servedBy"),
        timeout=20,
    )
    assert status_of(gyre.must_get("ModelVersion", "wine-v2"))["servedBy"] == ["wine"]

    with Load(service_url(gyre), "wine") as load:
        register(gyre, process_operator, 3, failing_model())
        started = time.monotonic()
        rolled_back = gyre.wait(
            "InferenceService", "wine", lambda o: gyre.phase(o) == "RolledBack", 120
        )
        elapsed = time.monotonic() - started
        before = load.statuses[200]
        wait_for(lambda: load.statuses[200] >= before + 20, timeout=30)
    status = status_of(rolled_back)
    assert status["stableVersion"] == 2
    failed = status["failedVersions"]
    assert [(f["version"], f["reason"]) for f in failed] == [(3, "AnalysisFailed")], failed
    assert "error rate" in failed[0]["message"]
    assert process_operator.metric("gyre_rollouts_total", result="RolledBack") >= 1
    assert process_operator.metric("gyre_rollouts_total", result="Promoted") >= 1
    outcomes = ("Fail", "Rollback")
    for outcome in outcomes:
        assert process_operator.metric(
            "gyre_canary_analysis_total", namespace=gyre.namespace, name="wine", outcome=outcome
        ), outcome
    assert status["analysis"]["failures"] == 2  # failureLimit 1: the second failure rolls back
    assert load.statuses[500] > 0  # the canary's own failures, counted by the analysis
    assert load.versions["3"] == 0
    print(f"broken version rolled back {elapsed:.1f} s after it was registered")
    gone, _ = gyre.cluster.call(gyre.cluster.store.list, "apps", "deployments", gyre.namespace)
    assert [d["metadata"]["name"] for d in gone] == ["wine-stable"]
    assert gyre.ready(rolled_back)["status"] == "True"


def route_weights(gyre: Gyre) -> list[int]:
    """The backend weights of HTTPRoute `wine` (stable, canary)."""
    route = gyre.cluster.call(
        gyre.cluster.store.get, "gateway.networking.k8s.io", "httproutes", gyre.namespace, "wine"
    )
    return [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]]


def test_manual_control_with_gateway_api_weights(proc: Gyre, process_operator: Operator) -> None:
    gyre = proc
    register(gyre, process_operator, 1, classifier(3))
    manifest = service_manifest(steps=[{"weight": 20, "pause": "10m"}])
    manifest["spec"]["runtime"]["replicas"] = 1
    manifest["spec"]["trafficRouting"] = {
        "type": "gatewayAPI",
        "gatewayAPI": {"parentRefs": [{"name": "public"}]},
    }
    gyre.create(manifest)
    gyre.wait("InferenceService", "wine", lambda o: gyre.phase(o) == "Ready", 90)
    assert route_weights(gyre) == [100, 0]
    assert rollout(gyre, "abort", "wine").returncode == 1

    register(gyre, process_operator, 2, classifier(5))
    canary = gyre.wait("InferenceService", "wine", lambda o: status_of(o).get("canaryVersion"), 60)
    assert status_of(canary)["canaryWeight"] == 20
    wait_for(lambda: route_weights(gyre) == [80, 20], timeout=20)
    shown = rollout(gyre, "status", "wine")
    assert shown.returncode == 0, shown.stderr
    assert "Canary:     v2, step 1 of 1, weight 20%" in shown.stdout, shown.stdout

    aborted = rollout(gyre, "abort", "wine")
    assert aborted.returncode == 0, aborted.stderr
    rolled_back = gyre.wait("InferenceService", "wine", lambda o: gyre.phase(o) == "RolledBack")
    assert [(f["version"], f["reason"]) for f in status_of(rolled_back)["failedVersions"]] == [
        (2, "Aborted")
    ]
    assert "gyre.dev/rollout-action" not in rolled_back["metadata"].get("annotations", {})
    wait_for(lambda: route_weights(gyre) == [100, 0], timeout=20)

    assert rollout(gyre, "retry", "wine").returncode == 0
    gyre.wait("InferenceService", "wine", lambda o: status_of(o).get("canaryVersion") == 2, 60)
    process_operator.restart()  # mid-rollout: the new process takes over, creating nothing twice
    assert process_operator.metric("gyre_canary_weight", namespace=gyre.namespace, name="wine") in (
        0.0,
        20.0,
    )
    promoted = rollout(gyre, "promote", "wine", "--full")
    assert promoted.returncode == 0, promoted.stderr
    done = gyre.wait(
        "InferenceService", "wine", lambda o: status_of(o).get("stableVersion") == 2, 90
    )
    assert status_of(done)["failedVersions"] == []
    assert route_weights(gyre) == [100, 0]
    deployments, _ = gyre.cluster.call(
        gyre.cluster.store.list, "apps", "deployments", gyre.namespace
    )
    assert [d["metadata"]["name"] for d in deployments] == ["wine-stable"]
    wanted = ["RolloutStarted", "RolledBack", "RetryRequested", "RolloutStarted", "Promoted"]
    wait_for(lambda: in_order(gyre.event_reasons("InferenceService", "wine"), wanted), timeout=10)


def in_order(seen: list[str], wanted: list[str]) -> bool:
    """Whether wanted occurs in seen as a subsequence (other items may come between)."""
    remaining = iter(seen)
    return all(item in remaining for item in wanted)
