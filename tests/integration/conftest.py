"""Fixtures for the operator's integration tests.

A local cluster with Gyre's CRDs, `gyre operator` as a subprocess of the test (free metrics and
health ports, its log in a file that is attached to the report of a failing test), and helpers
that drive both over HTTP with the official kubernetes client: create and read Gyre objects,
Jobs and Events, and wait for conditions with `wait_for` of gyre_local.cluster.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gyre_local.cluster import LocalCluster, running_cluster, wait_for
from gyre_local.kubelet.kubelet import Behaviour

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION = "gyre.dev", "v1alpha1"
PLURALS = {
    "Dataset": "datasets",
    "TrainingRun": "trainingruns",
    "ModelVersion": "modelversions",
    "InferenceService": "inferenceservices",
    "DriftMonitor": "driftmonitors",
}
COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "app.kubernetes.io/managed-by=gyre"
LOG_TAIL_LINES = 300
SIGNATURE = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 13]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ],
}

WINE_FEATURES = (
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280_od315_of_diluted_wines",
    "proline",
)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# ---- the operator subprocess ----

_LIVE: list[Operator] = []


class Operator:
    """`gyre operator` against a local cluster, run as a subprocess; its output goes to log."""

    def __init__(self, cluster: LocalCluster, log_path: Path, artifact_root: str) -> None:
        self.cluster = cluster
        self.log_path = log_path
        self.artifact_root = artifact_root
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.metrics_port = 0

    def start(self) -> None:
        """Start the operator and wait until its liveness endpoint answers."""
        assert self.process is None, "already running"
        health_port = free_port()
        self.metrics_port = free_port()
        argv = [
            sys.executable, "-m", "gyre_operator.cli", "operator",
            "--kubeconfig", str(self.cluster.kubeconfig_path),
            "--metrics-port", str(self.metrics_port),
            "--health-port", str(health_port),
            "--artifact-root", self.artifact_root,
            "--log-format", "plain",
        ]  # fmt: skip
        self.starts += 1
        with self.log_path.open("a") as log:
            log.write(f"==== operator start {self.starts} ====\n")
            log.flush()
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        if self not in _LIVE:
            _LIVE.append(self)
        url = f"http://127.0.0.1:{health_port}/healthz"

        def up() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            return _healthy(url)

        wait_for(up, timeout=30)

    def metric(self, metric: str, **labels: str) -> float:
        """A sample of the operator's /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == metric and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def kill(self) -> None:
        """SIGKILL: no cleanup handler runs, whatever was in flight is lost."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None
        with self.log_path.open("a") as log:
            log.write("==== operator killed (SIGKILL) ====\n")

    def restart(self) -> None:
        """SIGKILL, then start again."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """Terminate the operator if it runs."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None
        if self in _LIVE:
            _LIVE.remove(self)

    def log_tail(self, offset: int = 0, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines logged after byte offset."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the operators' log (what they wrote during the test) to a failing test's report."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        offsets: dict[Path, int] = item.stash.get(_LOG_OFFSETS, {})
        for operator in list(_LIVE):
            offset = offsets.get(operator.log_path, 0)
            report.sections.append((f"operator log {operator.log_path}", operator.log_tail(offset)))
    return report


_LOG_OFFSETS = pytest.StashKey[dict[Path, int]]()


@pytest.fixture(autouse=True)
def _remember_log_offsets(request: pytest.FixtureRequest) -> None:
    request.node.stash[_LOG_OFFSETS] = {
        o.log_path: o.log_path.stat().st_size for o in _LIVE if o.log_path.exists()
    }


@pytest.fixture(scope="module")
def sim_cluster() -> Iterator[LocalCluster]:
    """A local cluster with a simulated kubelet and Gyre's CRDs, shared by a module."""
    with running_cluster(kubelet="simulated", crds=[REPO / "crds"]) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def sim_operator(
    sim_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """`gyre operator` watching every namespace of the simulated cluster."""
    directory = tmp_path_factory.mktemp("operator")
    operator = Operator(sim_cluster, directory / "operator.log", (directory / "art").as_uri())
    operator.start()
    yield operator
    operator.stop()


@pytest.fixture(scope="module")
def process_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A local cluster whose kubelet runs pods as processes; local/python is this Python."""
    state = tmp_path_factory.mktemp("process-cluster")
    with running_cluster(
        kubelet="process",
        crds=[REPO / "crds"],
        state_dir=state,
        image_map={"local/python": sys.executable},
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def process_operator(
    process_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """`gyre operator` on the process cluster, artifacts under a temporary directory."""
    directory = tmp_path_factory.mktemp("operator")
    operator = Operator(
        process_cluster, directory / "operator.log", (directory / "artifacts").as_uri()
    )
    operator.start()
    yield operator
    operator.stop()


# ---- talking to the cluster ----

_NAMESPACES = itertools.count(1)


def namespace_for(request: pytest.FixtureRequest) -> str:
    """A fresh namespace name for the test: a DNS label from its name."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return f"{base[:50].rstrip('-')}-{next(_NAMESPACES)}"


class Gyre:
    """Gyre objects, Jobs and Events in one namespace of a cluster, as plain dicts."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.api_client = cluster.api_client()
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)

    def create_namespace(self) -> None:
        """Create the namespace."""
        self.core.create_namespace({"metadata": {"name": self.namespace}})

    def simulate(self, component: str, behaviour: Behaviour) -> None:
        """From now on, this namespace's pods of a Gyre component behave so (simulated kubelet)."""
        self.cluster.simulation.add(
            behaviour, labels={COMPONENT: component}, namespace=self.namespace
        )

    # ---- Gyre objects ----

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Gyre object in the namespace."""
        body = {"apiVersion": f"{GROUP}/{VERSION}", **body}
        body["metadata"] = {**body["metadata"], "namespace": self.namespace}
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[body["kind"]], body
        )
        return created

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURALS[kind], name
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def must_get(self, kind: str, name: str) -> dict[str, Any]:
        """The object, which must exist."""
        found = self.get(kind, name)
        assert found is not None, f"{kind} {self.namespace}/{name} does not exist"
        return found

    def objects(self, kind: str, selector: str = "") -> list[dict[str, Any]]:
        """The namespace's objects of a kind."""
        listing = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[kind], label_selector=selector
        )
        items: list[dict[str, Any]] = listing["items"]
        return items

    def patch(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch an object (its spec or metadata)."""
        patched: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[kind], name, body
        )
        return patched

    def patch_status(self, kind: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch an object's status through the status subresource."""
        patched: dict[str, Any] = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURALS[kind], name, {"status": status}
        )
        return patched

    def delete(self, kind: str, name: str) -> None:
        """Delete an object (finalizers may hold it)."""
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[kind], name
        )

    # ---- children and events ----

    def jobs(self, selector: str = MANAGED_BY) -> list[dict[str, Any]]:
        """The namespace's Jobs (Gyre's by default) as dicts."""
        listing = self.batch.list_namespaced_job(self.namespace, label_selector=selector)
        return [self.api_client.sanitize_for_serialization(j) for j in listing.items]

    def events(self, kind: str, name: str) -> list[dict[str, Any]]:
        """The Events about one object, oldest first."""
        listing = self.core.list_namespaced_event(self.namespace)
        events = [
            self.api_client.sanitize_for_serialization(e)
            for e in listing.items
            if e.involved_object.kind == kind and e.involved_object.name == name
        ]
        events.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
        return events

    def event_reasons(self, kind: str, name: str) -> list[str]:
        """The reasons of the Events about one object, oldest first."""
        return [e["reason"] for e in self.events(kind, name)]

    # The operator posts an Event just after the status change it explains, so a test that has
    # seen the status waits for the Event rather than reading the list once.

    def wait_event_reasons(
        self, kind: str, name: str, expected: list[str], timeout: float = 10.0
    ) -> None:
        """Wait until the reasons of the Events about one object are exactly expected."""
        try:
            wait_for(lambda: self.event_reasons(kind, name) == expected, timeout=timeout)
        except TimeoutError:
            assert self.event_reasons(kind, name) == expected

    def wait_event(self, kind: str, name: str, reason: str, timeout: float = 10.0) -> None:
        """Wait until an Event with this reason is recorded about one object."""
        try:
            wait_for(lambda: reason in self.event_reasons(kind, name), timeout=timeout)
        except TimeoutError:
            assert reason in self.event_reasons(kind, name)

    # ---- waiting ----

    def wait(
        self,
        kind: str,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        """Wait until the object exists and predicate(object) holds; return the object."""
        seen: list[dict[str, Any] | None] = [None]

        def check() -> dict[str, Any] | None:
            obj = self.get(kind, name)
            seen[0] = obj
            return obj if obj is not None and predicate(obj) else None

        try:
            return wait_for(check, timeout=timeout)
        except TimeoutError:
            last = seen[0]
            shown = json.dumps(last.get("status") if last else None, indent=1)[:3000]
            raise AssertionError(
                f"{kind} {self.namespace}/{name}: condition not met in {timeout} s; "
                f"last status: {shown}"
            ) from None

    def wait_phase(self, kind: str, name: str, phase: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until the object's status.phase is phase."""
        return self.wait(kind, name, lambda o: self.phase(o) == phase, timeout)

    def wait_for_deletion(self, kind: str, name: str, timeout: float = 20.0) -> None:
        """Wait until the object is gone."""
        try:
            wait_for(lambda: self.get(kind, name) is None, timeout=timeout)
        except TimeoutError:
            last = self.get(kind, name)
            raise AssertionError(
                f"{kind} {self.namespace}/{name} still exists after {timeout} s: "
                f"{json.dumps(last, indent=1)[:3000]}"
            ) from None

    # ---- reading objects ----

    @staticmethod
    def phase(obj: dict[str, Any] | None) -> str | None:
        """status.phase of an object."""
        return ((obj or {}).get("status") or {}).get("phase")

    @staticmethod
    def ready(obj: dict[str, Any]) -> dict[str, Any]:
        """The Ready condition of an object (which must have one)."""
        conditions = (obj.get("status") or {}).get("conditions") or []
        found = [c for c in conditions if c["type"] == "Ready"]
        assert found, f"no Ready condition in {obj.get('status')}"
        return dict(found[0])

    @staticmethod
    def reason(obj: dict[str, Any] | None) -> str | None:
        """The reason of the Ready condition, if any."""
        conditions = ((obj or {}).get("status") or {}).get("conditions") or []
        return next((c.get("reason") for c in conditions if c["type"] == "Ready"), None)

    # ---- manifests and runtime results ----

    WINE_FEATURES = WINE_FEATURES
    SIGNATURE = SIGNATURE

    @staticmethod
    def dataset_manifest(
        name: str = "wine", uri: str = "pvc://gyre-data/wine/wine.csv", **spec: Any
    ) -> dict[str, Any]:
        """A Dataset of the wine data (target `target`, 13 numeric features)."""
        return {
            "kind": "Dataset",
            "metadata": {"name": name},
            "spec": {
                "source": {"uri": uri},
                "format": "csv",
                "schema": {
                    "target": "target",
                    "features": [{"name": f, "type": "numeric"} for f in WINE_FEATURES],
                },
                "validation": {"minRows": 100, "maxNullFraction": 0.0},
                **spec,
            },
        }

    @staticmethod
    def run_manifest(
        name: str, dataset: str = "wine", model: str = "wine", **spec: Any
    ) -> dict[str, Any]:
        """A TrainingRun with the built-in random forest and no gates unless given."""
        return {
            "kind": "TrainingRun",
            "metadata": {"name": name},
            "spec": {
                "datasetRef": {"name": dataset},
                "model": model,
                "trainer": {
                    "algorithm": "random_forest_classifier",
                    "hyperparameters": {"n_estimators": 50, "max_depth": 5},
                    "validationFraction": 0.25,
                    "seed": 7,
                },
                "backoffLimit": 0,
                **spec,
            },
        }

    @staticmethod
    def sha256_of(text: str) -> str:
        """A sha256 hex digest standing for some content."""
        return hashlib.sha256(text.encode()).hexdigest()

    @staticmethod
    def profile_success(digest: str, rows: int = 178) -> str:
        """What `gyre-runtime profile` reports on success."""
        root = f"file:///artifacts/datasets/wine/{digest}"
        return json.dumps(
            {
                "digest": digest,
                "rows": rows,
                "profileUri": f"{root}/profile.json",
                "sampleUri": f"{root}/sample.parquet",
                "features": list(WINE_FEATURES),
                "violations": [],
            }
        )

    @staticmethod
    def train_success(sha256: str, metrics: dict[str, float] | None = None) -> str:
        """What `gyre-runtime train` reports on success."""
        return json.dumps(
            {
                "modelUri": "file:///artifacts/models/wine/run/model.onnx",
                "sha256": sha256,
                "metadataUri": "file:///artifacts/models/wine/run/metadata.json",
                "metrics": metrics or {"accuracy": 0.97, "f1_macro": 0.96},
                "signature": SIGNATURE,
                "features": list(WINE_FEATURES),
            }
        )

    @staticmethod
    def verify_success(sha256: str) -> str:
        """What `gyre-runtime verify` reports on success."""
        return json.dumps({"sha256": sha256, "signature": SIGNATURE})

    @staticmethod
    def failure(reason: str, message: str) -> str:
        """What a runtime reports when it fails."""
        return json.dumps({"reason": reason, "message": message})


@pytest.fixture
def sim(
    sim_cluster: LocalCluster, sim_operator: Operator, request: pytest.FixtureRequest
) -> Iterator[Gyre]:
    """A fresh namespace on the simulated cluster the module's operator watches."""
    gyre = Gyre(sim_cluster, namespace_for(request))
    gyre.create_namespace()
    yield gyre
    gyre.api_client.close()


@pytest.fixture
def proc(
    process_cluster: LocalCluster, process_operator: Operator, request: pytest.FixtureRequest
) -> Iterator[Gyre]:
    """A fresh namespace on the process cluster the module's operator watches."""
    gyre = Gyre(process_cluster, namespace_for(request))
    gyre.create_namespace()
    yield gyre
    gyre.api_client.close()


@pytest.fixture
def make_operator(tmp_path: Path) -> Iterator[Callable[[LocalCluster], Operator]]:
    """A factory of started operators on a given cluster, stopped at the end of the test."""
    operators: list[Operator] = []

    def make(cluster: LocalCluster) -> Operator:
        operator = Operator(
            cluster, tmp_path / f"operator-{len(operators)}.log", (tmp_path / "art").as_uri()
        )
        operators.append(operator)
        operator.start()
        return operator

    yield make
    for operator in operators:
        operator.stop()


@pytest.fixture
def make_gyre(request: pytest.FixtureRequest) -> Iterator[Callable[[LocalCluster], Gyre]]:
    """A factory of helpers, each on a fresh namespace of a given cluster."""
    made: list[Gyre] = []

    def make(cluster: LocalCluster) -> Gyre:
        gyre = Gyre(cluster, namespace_for(request))
        gyre.create_namespace()
        made.append(gyre)
        return gyre

    yield make
    for gyre in made:
        gyre.api_client.close()
