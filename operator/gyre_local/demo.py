"""`gyre local demo`: the local cluster with Gyre's CRDs and examples, and the operator on it."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from gyre_local.cluster import LocalCluster
from gyre_operator.api import RESOURCES
from gyre_operator.cli import run_operator
from gyre_operator.config import OperatorConfig
from gyre_operator.crdgen import build_crd

EXAMPLES_DIR = Path("examples")


def manifests(directory: Path) -> list[dict[str, Any]]:
    """The objects of every YAML file in a directory, in file name order."""
    return [
        doc
        for path in sorted(directory.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def apply_gyre(cluster: LocalCluster, examples: list[dict[str, Any]]) -> None:
    """Install the CRDs generated from the API types and create the example objects."""
    for resource in RESOURCES:
        cluster.call(
            cluster.store.create,
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
            build_crd(resource),
        )
    plurals = {r.info.kind: r.info.plural for r in RESOURCES}
    for obj in examples:
        group = obj["apiVersion"].split("/")[0]
        namespace = obj["metadata"].get("namespace", "default")
        cluster.call(cluster.store.create, group, plurals[obj["kind"]], namespace, obj)


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C."""
    state_dir = (args.state_dir or Path(tempfile.mkdtemp(prefix="gyre-demo-"))).resolve()
    examples = manifests(args.examples) if args.examples.is_dir() else []
    cluster = LocalCluster(kubelet=args.kubelet, port=args.port, state_dir=state_dir)
    cluster.start()
    try:
        apply_gyre(cluster, examples)
        print(
            f"gyre local cluster at {cluster.url} with {len(examples)} example objects.\n"
            f"In another shell:\n"
            f"  export KUBECONFIG={cluster.kubeconfig_path}\n"
            f"  kubectl get gyre\n"
            f"Operator metrics: http://127.0.0.1:{args.metrics_port}/metrics. Ctrl-C stops.",
            file=sys.stderr,
            flush=True,
        )
        config = OperatorConfig(
            artifact_root=(state_dir / "artifacts").as_uri(),
            metrics_port=args.metrics_port,
            health_port=args.health_port,
            kubeconfig=str(cluster.kubeconfig_path),
        )
        return run_operator(config, log_format="plain")
    finally:
        cluster.stop()
