"""`gyre local up` in a subprocess: announces the cluster and URLs, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gyre_local.cli import main

pytestmark = [pytest.mark.cluster, pytest.mark.kubectl]
KUBECTL = "/usr/bin/kubectl"
MANIFESTS = """
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  selector: {app: api}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata:
  name: sleeper
spec:
  containers:
    - name: main
      image: local/python
      command: ["python", "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(600)"]
"""


class Lines:
    """The stdout lines of a process, readable with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(
            target=lambda: [self._queue.put(line) for line in stdout], daemon=True
        ).start()

    def until(self, prefix: str, timeout: float = 30.0) -> str:
        while True:
            line = self._queue.get(timeout=timeout)
            if line.startswith(prefix):
                return line.strip()


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_up_runs_until_interrupted_and_stops_its_processes(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    command = [
        sys.executable,
        "-c",
        "import sys; from gyre_local.cli import main; sys.exit(main())",
        "up",
        "--kubelet",
        "process",
        "--state-dir",
        str(tmp_path),
        "--image",
        f"local/python={sys.executable}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        lines = Lines(process)
        kubeconfig = lines.until("export KUBECONFIG=").split("=", 1)[1]
        assert kubeconfig == str(tmp_path / "kubeconfig")
        kubectl(kubeconfig, "apply", "-f", "-", stdin=MANIFESTS)
        announced = lines.until("service default/api: ")
        assert announced.split(": ", 1)[1].startswith("http://127.0.0.1:")
        kubectl(kubeconfig, "wait", "--for=condition=Ready", "pod/sleeper", "--timeout=30s")
        pid = int(kubectl(kubeconfig, "logs", "sleeper").split()[0])
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
        assert lines.until("gyre local cluster stopped")
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        if process.poll() is None:
            process.kill()


def test_bad_image_mapping_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--image", "no-equals-sign"]) == 2
    assert "IMAGE=EXECUTABLE" in capsys.readouterr().err
