"""E2E targets: the local cluster (always), and a real cluster in KUBECONFIG when Docker exists.

The same scenarios run against both. The real-cluster target is meant for kind
(`kind create cluster`), and is skipped with the reason when there is no Docker engine or no
reachable cluster in KUBECONFIG.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from targets import CLAIM_NAME, Target

from gyre_local.cluster import running_cluster


def _real_cluster_skip_reason() -> str | None:
    if not os.environ.get("KUBECONFIG"):
        return "no KUBECONFIG: create a kind cluster (`kind create cluster`) to run this target"
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True).returncode != 0:
        return "no Docker engine on this machine, so no kind cluster to run against"
    probe = subprocess.run(["kubectl", "version", "--request-timeout=5s"], capture_output=True)
    if probe.returncode != 0:
        return "the cluster in KUBECONFIG does not answer"
    return None


@pytest.fixture(params=["local", "kind"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Each scenario once on the local cluster and once on the cluster in KUBECONFIG."""
    if request.param == "local":
        with running_cluster(kubelet="simulated") as cluster:
            yield Target("local", str(cluster.kubeconfig_path), "default")
        return
    yield from _kind_target()


@pytest.fixture(params=["local", "kind"])
def runtime_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A target whose pods really run Gyre's runtime: local processes, or the kind cluster
    with the runtime image loaded into it (named by GYRE_E2E_RUNTIME_IMAGE)."""
    if request.param == "local":
        with running_cluster(kubelet="process") as cluster:
            yield Target("local", str(cluster.kubeconfig_path), "default")
        return
    image = os.environ.get("GYRE_E2E_RUNTIME_IMAGE")
    reason = _real_cluster_skip_reason()
    if reason:
        pytest.skip(reason)
    if not image:
        pytest.skip(
            "no GYRE_E2E_RUNTIME_IMAGE: build runtimes/Dockerfile, `kind load docker-image` it "
            "and name it in GYRE_E2E_RUNTIME_IMAGE to run this scenario on kind"
        )
    for kind in _kind_target():
        yield Target(kind.name, kind.kubeconfig, kind.namespace, runtime_image=image)


def _kind_target() -> Iterator[Target]:
    """A fresh namespace on the cluster in KUBECONFIG, removed afterwards; skips without one."""
    reason = _real_cluster_skip_reason()
    if reason:
        pytest.skip(reason)
    namespace = f"gyre-e2e-{os.getpid()}"
    kind = Target("kind", os.environ["KUBECONFIG"], namespace)
    kind.kubectl("create", "namespace", namespace)
    try:
        yield kind
    finally:
        kind.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def operator(runtime_target: Target, tmp_path: Path) -> Iterator[Path]:
    """`gyre operator` against the target's namespace, its artifact store on the claim
    `gyre-data`; yields its log file."""
    log = tmp_path / "operator.log"
    command = [
        sys.executable, "-m", "gyre_operator.cli", "operator",
        "--kubeconfig", runtime_target.kubeconfig,
        "--namespace", runtime_target.namespace,
        "--artifact-root", f"pvc://{CLAIM_NAME}/artifacts",
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
