"""`gyre local demo`: the README's run command brings up the cluster, data, examples and
operator, sends the model traffic, shifts it, and follows the loop to the retrained version."""

from __future__ import annotations

import csv
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from gyre_local.cluster import wait_for
from gyre_local.workload import SHIFTED_FEATURES

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "gyre_local.cli", "demo"]
REQUESTS = re.compile(r"Requests: (\d+) sent, (\d+) ok, (\d+) failed")


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


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain text (the operator and the pods name
    the demo's state directory)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(command)
    return found


def in_order(output: str, lines: list[str]) -> None:
    """Each line occurs in the output, after the one before it."""
    position = 0
    for line in lines:
        found = output.find(line, position)
        assert found >= 0, f"{line!r} missing after position {position}:\n{output[-3000:]}"
        position = found + len(line)


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
        text = output_path.read_text()
        assert f"operator started, its log: {operator_log}" in text
        assert "demo timings: Dataset refreshInterval 15s;" in text
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
    assert "Where to look next:" in output_path.read_text()
    assert processes_mentioning(str(state)) == []


def test_demo_without_examples_says_where_it_looked(tmp_path: Path) -> None:
    result = subprocess.run(DEMO, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"no examples directory at {tmp_path / 'examples'}" in result.stdout


def test_on_a_terminal_the_view_is_live_and_ctrl_c_ends_it_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    controller, terminal = pty.openpty()
    demo = subprocess.Popen(
        [*DEMO, "--state-dir", str(state)],
        cwd=REPO, stdin=terminal, stdout=terminal, stderr=terminal,
        env={**os.environ, "COLUMNS": "140", "LINES": "60"},
    )  # fmt: skip
    os.close(terminal)
    screen = bytearray()

    def shown(text: str) -> bool:
        try:
            while select.select([controller], [], [], 0.1)[0]:
                screen.extend(os.read(controller, 65536))
        except OSError:  # the terminal closed: the demo ended
            pass
        return text in screen.decode(errors="replace")

    try:
        wait_for(lambda: shown("traffic started: 40 requests/s"), timeout=120)
        assert shown("Resources") and shown("InferenceService wine Ready (serving version 1)")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(30)
        wait_for(lambda: shown("Where to look next:") or demo.poll() is not None, timeout=10)
        shown("")
        os.close(controller)
    assert demo.returncode == 0, screen.decode(errors="replace")[-2000:]
    assert "What happened:" in screen.decode(errors="replace")
    assert processes_mentioning(str(state)) == []


@pytest.mark.slow
def test_demo_exit_when_done_follows_drift_retraining_and_the_canary_to_promotion(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [*DEMO, "--state-dir", str(tmp_path), "--exit-when-done", "--timeout", "240"],
        cwd=REPO, capture_output=True, text=True, timeout=360,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    in_order(
        result.stdout,
        [
            "Dataset wine Ready",
            # The run and the version it registers are written together: either prints first.
            "TrainingRun wine-1 Succeeded",
            "InferenceService wine Ready (serving version 1)",
            "traffic started: 40 requests/s",
            ": NoDrift,",
            f"traffic shifted: {', '.join(SHIFTED_FEATURES)}",
            "new labelled data, shifted alike, written to",
            "Dataset wine new version",
            ": Drift, 600 samples",
            "DriftMonitor wine created TrainingRun wine-retrain-",
            "ModelVersion wine-v2 Ready",
            "InferenceService wine canary: version 2 at 25% (step 1 of 2)",
            "InferenceService wine canary: version 2 at 50% (step 2 of 2)",
            "InferenceService wine promoted version 2 (was 1)",
            "Where to look next:",
            "kubectl describe gdm wine",
            "/v2/models/wine/infer -H 'Content-Type: application/json'",
        ],
    )
    assert "ModelVersion wine-v1 Ready" in result.stdout
    assert "✗" not in result.stdout
    requests = REQUESTS.search(result.stdout)
    assert requests is not None
    sent, ok, failed = map(int, requests.groups())
    assert ok > 0 and ok + failed <= sent and failed * 100 <= sent
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.slow
def test_demo_without_the_shift_ends_after_the_second_check_without_drift(tmp_path: Path) -> None:
    result = subprocess.run(
        [*DEMO, "--state-dir", str(tmp_path), "--exit-when-done", "--no-shift",
         "--timeout", "180"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert len(re.findall(r"DriftMonitor wine check \S+: NoDrift,", result.stdout)) == 2
    for absent in ("traffic shifted", "new version", "created TrainingRun", "canary"):
        assert absent not in result.stdout
    assert processes_mentioning(str(tmp_path)) == []
