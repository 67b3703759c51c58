"""The simulated kubelet: pod lifecycles driven by SimulationRules and annotations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gyre_local.cluster import LocalCluster, running_cluster, wait_for
from gyre_local.kubelet.kubelet import Behaviour, SimulationRules, parse_duration
from gyre_local.kubelet.state import Backoff

pytestmark = pytest.mark.cluster
NS = "default"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    rules = SimulationRules()
    rules.add(Behaviour(duration=0.1, exit_code=2, termination_message="boom"), name_prefix="bad-")
    rules.add(Behaviour(logs="hello from a simulation\n"), labels={"talks": "yes"})
    rules.add(Behaviour(crash_loop=True), name_prefix="crash-")
    with running_cluster(simulation=rules, restart_backoff=Backoff(0.05, 0.1)) as running:
        yield running


def pod(
    name: str,
    *,
    restart_policy: str = "Always",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    init: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "containers": [{"name": "main", "image": "anything"}],
    }
    if init:
        spec["initContainers"] = [{"name": "setup", "image": "anything"}]
    metadata = {"name": name, "annotations": annotations or {}, "labels": labels or {}}
    return {"metadata": metadata, "spec": spec}


def phase(core: client.CoreV1Api, name: str) -> str:
    return str(core.read_namespaced_pod(name, NS).status.phase)


def test_long_running_pod_is_running_and_ready(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod("server", init=True))
    wait_for(lambda: phase(core, "server") == "Running")
    found = core.read_namespaced_pod("server", NS)
    assert found.spec.node_name == "local"
    assert (found.status.pod_ip, found.status.host_ip) == ("127.0.0.1", "127.0.0.1")
    assert found.status.start_time is not None
    conditions = {c.type: c.status for c in found.status.conditions}
    for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        assert conditions[kind] == "True"
    (main,) = found.status.container_statuses
    assert main.ready and main.started and main.restart_count == 0
    assert main.state.running is not None
    (setup,) = found.status.init_container_statuses
    assert setup.state.terminated.reason == "Completed"


def test_rule_by_name_prefix_fails_the_pod_with_a_message(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod("bad-1", restart_policy="Never"))
    wait_for(lambda: phase(core, "bad-1") == "Failed")
    terminated = core.read_namespaced_pod("bad-1", NS).status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason, terminated.message) == (2, "Error", "boom")


def test_annotations_override_the_rules(core: client.CoreV1Api) -> None:
    annotations = {
        "local.gyre.dev/simulate-exit-code": "0",
        "local.gyre.dev/simulate-duration": "50ms",
        "local.gyre.dev/simulate-termination-message": '{"accuracy": 0.93}',
    }
    core.create_namespaced_pod(NS, pod("bad-2", restart_policy="Never", annotations=annotations))
    wait_for(lambda: phase(core, "bad-2") == "Succeeded")
    status = core.read_namespaced_pod("bad-2", NS).status
    terminated = status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert terminated.message == '{"accuracy": 0.93}'
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "PodCompleted")


def test_crash_loop_restarts_and_never_gets_ready(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod("crash-1"))

    def restarted_twice() -> Any:
        statuses = core.read_namespaced_pod("crash-1", NS).status.container_statuses or []
        return statuses and statuses[0].restart_count >= 2 and statuses[0]

    status = wait_for(restarted_twice)
    assert status.last_state.terminated.exit_code == 1
    assert not status.ready
    assert phase(core, "crash-1") == "Running"


def test_logs_come_from_the_behaviour(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod("chatty", labels={"talks": "yes"}))
    wait_for(lambda: phase(core, "chatty") == "Running")
    assert core.read_namespaced_pod_log("chatty", NS) == "hello from a simulation\n"


def test_deleted_pod_disappears(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, pod("short-lived"))
    wait_for(lambda: phase(core, "short-lived") == "Running")
    core.delete_namespaced_pod("short-lived", NS)
    wait_for(
        lambda: all(p.metadata.name != "short-lived" for p in core.list_namespaced_pod(NS).items)
    )


@pytest.mark.parametrize(
    ("text", "seconds"), [("2", 2.0), ("1.5s", 1.5), ("250ms", 0.25), ("2m", 120.0), ("1h", 3600.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("soon")
