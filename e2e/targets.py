"""A cluster the e2e scenarios run against, driven with kubectl."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """A cluster the scenarios run against."""

    name: str
    kubeconfig: str
    namespace: str
    runtime_image: str = "gyre-runtime:0.1.0"

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the target in the scenario's namespace."""
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        env.setdefault("KUBECACHEDIR", str(Path(self.kubeconfig).parent / ".kube-cache"))
        return subprocess.run(
            ["kubectl", "--namespace", self.namespace, *args],
            env=env,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )
