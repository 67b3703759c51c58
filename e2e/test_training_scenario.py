"""Scenario: data on a claim becomes a profiled Dataset, a trained run, a registered model
and a served one.

Everything goes through kubectl and `gyre operator`, as a platform engineer would run it: the
data is written by a Job onto the PersistentVolumeClaim `gyre-data`, the examples are applied
unchanged, and the operator runs against the target with its artifact store on the same claim.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from targets import REPO, Target

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: gyre-data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"""
WRITE_WINE = textwrap.dedent(
    """
    import csv, pathlib, sys
    from sklearn.datasets import load_wine
    wine = load_wine()
    path = pathlib.Path(sys.argv[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*wine.feature_names, "target"])
        writer.writerows([*row, label] for row, label in zip(wine.data, wine.target))
    """
)


def writer_job(image: str) -> str:
    """A Job that writes scikit-learn's wine data set where examples/01-dataset.yaml reads."""
    script = textwrap.indent(WRITE_WINE, " " * 14)
    return f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: write-wine}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: write
          image: {image}
          command:
            - python
            - -c
            - |
{script}
          args: [/data/wine/wine.csv]
          volumeMounts: [{{name: data, mountPath: /data}}]
      volumes: [{{name: data, persistentVolumeClaim: {{claimName: gyre-data}}}}]
"""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def operator(runtime_target: Target, tmp_path: Path) -> Iterator[Path]:
    """`gyre operator` against the target's namespace; yields its log file."""
    log = tmp_path / "operator.log"
    command = [
        sys.executable, "-m", "gyre_operator.cli", "operator",
        "--kubeconfig", runtime_target.kubeconfig,
        "--namespace", runtime_target.namespace,
        "--artifact-root", "pvc://gyre-data/artifacts",
        "--runtime-image", runtime_target.runtime_image,
        "--metrics-port", str(free_port()), "--health-port", str(free_port()),
        "--log-format", "plain",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ)
    try:
        yield log
    finally:
        process.terminate()
        process.wait(15)


def apply(target: Target, manifest: str, tmp_path: Path, name: str) -> None:
    """kubectl apply of a manifest written to a file."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(manifest)
    target.kubectl("apply", "-f", str(path))


def test_examples_train_and_register_a_model(
    runtime_target: Target, operator: Path, tmp_path: Path
) -> None:
    target = runtime_target
    target.kubectl("apply", "-f", str(REPO / "crds"))
    target.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd",
                   "-l", "app.kubernetes.io/part-of=gyre")  # fmt: skip
    apply(target, CLAIM, tmp_path, "claim")
    apply(target, writer_job(target.runtime_image), tmp_path, "writer")
    target.kubectl("wait", "--for=condition=Complete", "--timeout=120s", "job/write-wine")
    for example in ("01-dataset.yaml", "02-trainingrun.yaml"):
        target.kubectl("apply", "-f", str(REPO / "examples" / example))
    waited = target.kubectl(
        "wait", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=180s", "gtr/wine-1",
        check=False,
    )  # fmt: skip
    assert waited.returncode == 0, waited.stderr + operator.read_text()[-3000:]
    assert (
        target.kubectl("get", "gds", "wine", "-o", "jsonpath={.status.currentVersion.rows}").stdout
        == "178"
    )
    target.kubectl("wait", "--for=condition=Ready", "--timeout=60s", "gmv/wine-v1")
    lineage = target.kubectl("get", "gmv", "wine-v1", "-o", "jsonpath={.spec.lineage.trainingRun}")
    assert lineage.stdout == "wine-1"
    story = target.kubectl("describe", "gtr", "wine-1").stdout
    for reason in ("Started", "ModelRegistered"):
        assert reason in story

    # The registered model serves: InferenceService `wine` tracks the newest Ready version.
    target.kubectl("apply", "-f", str(REPO / "examples" / "03-inferenceservice.yaml"))
    served = target.kubectl(
        "wait", "--for=jsonpath={.status.phase}=Ready", "--timeout=180s", "gisvc/wine",
        check=False,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr + operator.read_text()[-3000:]
    proxy = f"/api/v1/namespaces/{target.namespace}/services/wine:80/proxy/v2/models/wine"
    metadata = json.loads(target.kubectl("get", "--raw", proxy).stdout)
    assert metadata["versions"] == ["1"]
    assert metadata["parameters"]["trainingRun"] == "wine-1"
    request = tmp_path / "infer.json"
    row = [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0]
    request.write_text(
        json.dumps(
            {"inputs": [{"name": "input", "shape": [1, 13], "datatype": "FP32", "data": row}]}
        )
    )
    answer = json.loads(
        target.kubectl("create", "--raw", f"{proxy}/infer", "-f", str(request)).stdout
    )
    assert answer["model_version"] == "1"
    assert answer["outputs"][0]["data"] == [0]  # the first wine of the data set is class 0
    status = subprocess.run(
        [sys.executable, "-m", "gyre_operator.cli", "rollout", "status", "wine",
         "-n", target.namespace, "--kubeconfig", target.kubeconfig],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "Stable:     v1" in status.stdout
