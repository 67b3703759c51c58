"""kubectl itself, run against a local cluster by the fidelity tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

KUBECTL = "/usr/bin/kubectl"

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def kubectl_runner(kubeconfig: str | Path, cache_dir: Path) -> Kubectl:
    """A function running kubectl with this kubeconfig (and a discovery cache of its own);
    it fails the test on a non-zero exit unless called with check=False."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(cache_dir)}

    def run(
        *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [KUBECTL, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run
