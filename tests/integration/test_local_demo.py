"""`gyre local demo`: the README's run command brings up the cluster, CRDs, examples, operator."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gyre_local.cluster import wait_for

pytestmark = pytest.mark.cluster


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_serves_the_examples_to_kubectl_and_the_operator_sees_them(tmp_path: Path) -> None:
    state = tmp_path / "state"
    log_path = tmp_path / "demo.log"
    command = [
        sys.executable, "-m", "gyre_local.cli", "demo",
        "--kubelet", "simulated", "--state-dir", str(state),
        "--metrics-port", str(free_port()), "--health-port", str(free_port()),
    ]  # fmt: skip
    with log_path.open("w") as log:
        demo = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "observed DriftMonitor default/wine" in log_path.read_text(), timeout=60)
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
        assert f"export KUBECONFIG={state / 'kubeconfig'}" in log_path.read_text()
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(30)
    assert demo.returncode == 0, log_path.read_text()[-2000:]
