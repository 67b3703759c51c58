"""`gyre local demo`: the README's run command brings up the cluster, data, examples, operator."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from gyre_local.cluster import wait_for

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "gyre_local.cli", "demo"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serves(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2):
            return True
    except OSError:
        return False


def test_demo_writes_the_data_runs_the_operator_and_serves_the_examples(tmp_path: Path) -> None:
    state = tmp_path / "state"
    output_path = tmp_path / "demo.out"
    metrics_port = free_port()
    command = [*DEMO, "--kubelet", "simulated", "--state-dir", str(state),
               "--metrics-port", str(metrics_port)]  # fmt: skip
    with output_path.open("w") as output:
        demo = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
    operator_log = state / "operator.log"
    try:
        wait_for(
            lambda: "applied 5 example objects" in output_path.read_text() and serves(metrics_port),
            timeout=60,
        )
        assert f"operator started, its log: {operator_log}" in output_path.read_text()
        assert serves(metrics_port)
        with (state / "volumes" / "default" / "gyre-data" / "wine" / "wine.csv").open() as data:
            rows = list(csv.reader(data))
        assert rows[0][0] == "alcohol" and rows[0][-2:] == ["proline", "target"]
        assert len(rows[0]) == 14 and len(rows) == 179
        env = {
            **os.environ,
            "KUBECONFIG": str(state / "kubeconfig"),
            "KUBECACHEDIR": str(tmp_path / "cache"),
        }
        listed = subprocess.run(
            ["kubectl", "get", "gyre", "-o", "name"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert len(listed) == 5
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(30)
    assert demo.returncode == 0, output_path.read_text()[-2000:]
    assert not serves(metrics_port), "the operator outlived the demo"


def test_demo_without_examples_says_where_it_looked(tmp_path: Path) -> None:
    result = subprocess.run(DEMO, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"no examples directory at {tmp_path / 'examples'}" in result.stdout


@pytest.mark.slow
def test_demo_exit_when_done_reaches_every_milestone(tmp_path: Path) -> None:
    result = subprocess.run(
        [*DEMO, "--state-dir", str(tmp_path), "--exit-when-done", "--timeout", "120"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    for line in (
        "Dataset wine Ready",
        "TrainingRun wine-1 Succeeded",
        "ModelVersion wine-v1 Ready",
        "InferenceService wine Ready (serving version 1)",
        "/v2/models/wine/infer -H 'Content-Type: application/json'",
    ):
        assert line in result.stdout
