"""Scenario: a platform engineer installs the CRDs and applies the examples with kubectl."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from targets import REPO, Target

pytestmark = pytest.mark.e2e

BAD_ROLLOUT = """
apiVersion: gyre.dev/v1alpha1
kind: InferenceService
metadata: {name: bad-rollout}
spec:
  model: wine
  track: latest
  rollout:
    steps: [{weight: 50}, {weight: 20}]
"""
BAD_WEIGHT = """
apiVersion: gyre.dev/v1alpha1
kind: InferenceService
metadata: {name: bad-weight}
spec:
  model: wine
  modelVersion: 1
  rollout:
    steps: [{weight: 150}]
"""


def install_crds(target: Target) -> None:
    target.kubectl("apply", "-f", str(REPO / "crds"))
    target.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=gyre",
    )


def test_examples_apply_and_list_under_the_gyre_category(target: Target) -> None:
    install_crds(target)
    applied = target.kubectl("apply", "-f", str(REPO / "examples"))
    assert applied.stdout.count("created") + applied.stdout.count("unchanged") == 5
    listed = target.kubectl("get", "gyre", "-o", "name").stdout.split()
    assert sorted(name.split(".")[0] for name in listed) == [
        "dataset",
        "driftmonitor",
        "inferenceservice",
        "modelversion",
        "trainingrun",
    ]
    by_short_name = target.kubectl("get", "gisvc", "wine", "-o", "jsonpath={.spec.track}")
    assert by_short_name.stdout == "latest"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (BAD_ROLLOUT, r"spec\.rollout\.steps.*step weights must strictly increase"),
        (BAD_WEIGHT, r"spec\.rollout\.steps\[0\]\.weight.*less than or equal to 100"),
    ],
    ids=["non-increasing-steps", "weight-over-100"],
)
def test_invalid_manifests_are_refused_naming_the_field(
    target: Target, manifest: str, message: str, tmp_path: Path
) -> None:
    install_crds(target)
    path = tmp_path / "bad.yaml"
    path.write_text(manifest)
    refused = target.kubectl("apply", "-f", str(path), check=False)
    assert refused.returncode != 0
    assert re.search(message, refused.stderr), refused.stderr


def test_modelversion_spec_cannot_be_changed(target: Target) -> None:
    install_crds(target)
    target.kubectl("apply", "-f", str(REPO / "examples" / "05-modelversion.yaml"))
    patched = target.kubectl(
        "patch",
        "modelversion",
        "wine-notebook-v1",
        "--type=merge",
        "-p",
        '{"spec": {"artifact": {"uri": "s3://elsewhere/model.onnx"}}}',
        check=False,
    )
    assert patched.returncode != 0
    assert "immutable" in patched.stderr


def test_printer_columns_show_key_fields_and_wide_adds_more(target: Target) -> None:
    install_crds(target)
    target.kubectl("apply", "-f", str(REPO / "examples" / "03-inferenceservice.yaml"))
    header = target.kubectl("get", "gisvc").stdout.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "MODEL", "STABLE", "CANARY", "WEIGHT", "AGE"]
    wide = target.kubectl("get", "gisvc", "-o", "wide").stdout.splitlines()[0].split()
    assert wide == ["NAME", "PHASE", "MODEL", "STABLE", "CANARY", "WEIGHT", "URL", "AGE"]
    row = target.kubectl("get", "gisvc", "wine").stdout.splitlines()[1].split()
    assert row[0] == "wine" and re.fullmatch(r"\d+s", row[-1])
