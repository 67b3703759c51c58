"""`gyre operator` runs against a Kubernetes API: it sees every kind, serves health and metrics."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from gyre_local.cluster import LocalCluster, running_cluster, wait_for

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with running_cluster(kubelet="simulated", crds=[REPO / "crds"]) as running:
        yield running


RECONCILED_KINDS = ("Dataset", "TrainingRun", "ModelVersion")


def test_operator_reconciles_examples_and_serves_health_and_metrics(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    metrics_port, health_port = free_port(), free_port()
    log_path = tmp_path / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path)}
    with log_path.open("w") as log:
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gyre_operator.cli",
                "operator",
                "--namespace",
                "default",
                "--metrics-port",
                str(metrics_port),
                "--health-port",
                str(health_port),
                "--log-format",
                "plain",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        api = client.CustomObjectsApi(cluster.api_client())
        kinds = []
        for path in sorted((REPO / "examples").glob("*.yaml")):
            obj = yaml.safe_load(path.read_text())
            group, version = obj["apiVersion"].split("/")
            plural = obj["kind"].lower() + "s"
            api.create_namespaced_custom_object(group, version, "default", plural, obj)
            kinds.append(obj["kind"])

        def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
            conditions = (obj.get("status") or {}).get("conditions") or []
            return next((c for c in conditions if c["type"] == "Ready"), None)

        def reconciled_all() -> bool:
            objects = [
                api.list_namespaced_custom_object("gyre.dev", "v1alpha1", "default", plural)
                for plural in ("datasets", "trainingruns", "modelversions")
            ]
            return all(ready_condition(o) for listing in objects for o in listing["items"])

        wait_for(reconciled_all, timeout=30)
        assert wait_for(lambda: http_get(f"http://127.0.0.1:{health_port}/healthz"), timeout=10)

        def metrics_of_every_kind() -> str | None:
            metrics = http_get(f"http://127.0.0.1:{metrics_port}/metrics") or ""
            counted = (f'gyre_reconcile_duration_seconds_count{{kind="{k}"}}' for k in kinds)
            return metrics if all(c in metrics for c in counted) else None

        assert set(kinds) >= set(RECONCILED_KINDS)
        kinds = list(RECONCILED_KINDS)
        metrics = wait_for(metrics_of_every_kind, timeout=10)
        assert 'gyre_resources{kind="Dataset"' in metrics
    finally:
        operator.terminate()
        operator.wait(15)
    assert operator.returncode is not None


def test_operator_help_documents_its_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gyre_operator.cli", "operator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in ("--namespace", "--metrics-port", "--artifact-root", "--log-format"):
        assert flag in result.stdout


def test_runtime_help_works() -> None:
    result = subprocess.run(["gyre-runtime", "--help"], capture_output=True, text=True, check=True)
    assert "gyre-runtime" in result.stdout


def gyre_with_python_in(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`gyre ARGS` as if installed with its Python in `directory`, with nothing on PATH."""
    script = (
        f"import sys; sys.executable = {str(directory / 'python')!r}\n"
        f"from gyre_operator.cli import main; sys.exit(main({list(args)!r}))"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(directory / "nothing-here")},
    )


def test_gyre_local_execs_the_gyre_local_command_beside_python(tmp_path: Path) -> None:
    local = tmp_path / "gyre-local"
    local.write_text('#!/bin/sh\necho "$0 $*"\n')
    local.chmod(0o755)
    result = gyre_with_python_in(tmp_path, "local", "up", "--port", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{local} up --port 0\n"


def test_gyre_local_without_the_local_extra_says_how_to_install_it(tmp_path: Path) -> None:
    result = gyre_with_python_in(tmp_path, "local", "up")
    assert result.returncode == 1
    assert "pip install 'gyre-operator[local]'" in result.stderr


def test_gyre_help_lists_the_local_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gyre_operator.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "local" in result.stdout
