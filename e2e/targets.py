"""A cluster the e2e scenarios run against, driven with kubectl."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gyre_local.workload import write_wine_csv

REPO = Path(__file__).resolve().parents[1]
CLAIM_NAME = "gyre-data"
CLAIM = f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {CLAIM_NAME}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
"""
# Writes its argument's base64 bytes to a path: how a scenario lands data on the claim.
WRITE_FILE = (
    "import base64, pathlib, sys; path = pathlib.Path(sys.argv[1]); "
    "path.parent.mkdir(parents=True, exist_ok=True); "
    "part = path.with_name(path.name + '.part'); "
    "part.write_bytes(base64.b64decode(sys.argv[2])); part.replace(path)"
)
SERVING = re.compile(r"Starting to serve on 127\.0\.0\.1:(\d+)")


def wine_csv(directory: Path, *, shifted: bool = False, rows: int | None = None) -> bytes:
    """Labelled wine data as CSV: the data set itself, or `rows` resampled (and shifted)."""
    path = directory / f"wine-{'shifted' if shifted else 'plain'}-{rows}.csv"
    write_wine_csv(path, shifted=shifted, rows=rows, seed=2)
    return path.read_bytes()


@dataclass(frozen=True)
class Target:
    """A cluster the scenarios run against."""

    name: str
    kubeconfig: str
    namespace: str
    runtime_image: str = "gyre-runtime:0.1.0"

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the target in the scenario's namespace."""
        return subprocess.run(
            ["kubectl", "--namespace", self.namespace, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        env.setdefault("KUBECACHEDIR", str(Path(self.kubeconfig).parent / ".kube-cache"))
        return env

    def apply(self, manifest: str, directory: Path, name: str) -> None:
        """kubectl apply of a manifest written to a file."""
        path = directory / f"{name}.yaml"
        path.write_text(manifest)
        self.kubectl("apply", "-f", str(path))

    def install_crds(self) -> None:
        """Install Gyre's CRDs and wait until the API server serves them."""
        self.kubectl("apply", "-f", str(REPO / "crds"))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd",
                     "-l", "app.kubernetes.io/part-of=gyre")  # fmt: skip

    def land(self, path: str, content: bytes, directory: Path, job: str) -> None:
        """Write a file onto the claim `gyre-data` (at `path` inside it) from a Job, as data
        lands in a real volume; waits for the Job to complete."""
        encoded = base64.b64encode(content).decode()
        manifest = f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: {job}}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: write
          image: {self.runtime_image}
          command: [python, -c, "{WRITE_FILE}"]
          args: [/data/{path}, "{encoded}"]
          volumeMounts: [{{name: data, mountPath: /data}}]
      volumes: [{{name: data, persistentVolumeClaim: {{claimName: {CLAIM_NAME}}}}}]
"""
        self.apply(manifest, directory, job)
        self.kubectl("wait", "--for=condition=Complete", "--timeout=120s", f"job/{job}")

    @contextmanager
    def service_url(self, service: str, port: int) -> Iterator[str]:
        """An http:// URL on this machine that reaches a Service through the API server's
        service proxy, behind `kubectl proxy`: the same way on every target, and balanced
        over the Service's endpoints (a `kubectl port-forward svc/...` pins one pod, which
        would starve a canary of traffic)."""
        proxy = subprocess.Popen(
            ["kubectl", "proxy", "--port=0"],
            env=self._env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            assert proxy.stdout is not None
            line = proxy.stdout.readline()
            found = SERVING.search(line)
            if found is None:
                raise RuntimeError(f"kubectl proxy: {line.strip()}")
            base = f"http://127.0.0.1:{found.group(1)}"
            yield f"{base}/api/v1/namespaces/{self.namespace}/services/{service}:{port}/proxy"
        finally:
            proxy.terminate()
            proxy.wait(10)
