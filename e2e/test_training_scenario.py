"""Scenario: data on a claim becomes a profiled Dataset, a trained run, a registered model
and a served one.

Everything goes through kubectl and `gyre operator`, as a platform engineer would run it: the
data is written by a Job onto the PersistentVolumeClaim `gyre-data`, the examples are applied
unchanged, and the operator runs against the target with its artifact store on the same claim.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from targets import CLAIM, REPO, Target, wine_csv

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_examples_train_and_register_a_model(
    runtime_target: Target, operator: Path, tmp_path: Path
) -> None:
    target = runtime_target
    target.install_crds()
    target.apply(CLAIM, tmp_path, "claim")
    target.land("wine/wine.csv", wine_csv(tmp_path), tmp_path, "write-wine")
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
