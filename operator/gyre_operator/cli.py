"""The `gyre` command: run the operator, regenerate the CRDs, run the local cluster."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from gyre_operator.config import DEFAULT_RUNTIME_IMAGE, OperatorConfig

LOG_FORMATS = ("plain", "full", "json")
LOCAL_COMMAND = "gyre-local"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `gyre` command."""
    parser = argparse.ArgumentParser(
        prog="gyre", description="Gyre: a Kubernetes operator for the machine-learning lifecycle."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "operator",
        help="run the operator against the cluster in KUBECONFIG (or in-cluster config)",
        description="Run the Gyre operator. It reads the cluster from KUBECONFIG, or the "
        "in-cluster service account when running in a pod.",
    )
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch only this namespace (repeat for several; glob patterns allowed); "
        "default: every namespace",
    )
    run.add_argument(
        "--kubeconfig",
        help="kubeconfig file to use (default: KUBECONFIG, ~/.kube/config, or in-cluster)",
    )
    run.add_argument(
        "--metrics-port", type=int, default=8080, help="port of /metrics (default 8080)"
    )
    run.add_argument(
        "--health-port", type=int, default=8081, help="port of the /healthz liveness endpoint"
    )
    run.add_argument(
        "--artifact-root",
        default=OperatorConfig.artifact_root,
        help="root URI of the artifact store: s3://bucket/prefix, gs://..., file:///path, "
        "pvc://claim/path (default %(default)s)",
    )
    run.add_argument(
        "--artifact-secret",
        metavar="SECRET",
        help="a Secret, in the namespace of each Gyre object, whose keys (such as "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL) become environment "
        "variables of the pods that read or write the artifact store",
    )
    run.add_argument(
        "--runtime-image",
        default=DEFAULT_RUNTIME_IMAGE,
        help="image of the Gyre runtime pods (default %(default)s)",
    )
    run.add_argument("--log-format", choices=LOG_FORMATS, default="full", help="log line format")
    run.add_argument("--verbose", action="store_true", help="log more")
    run.add_argument("--debug", action="store_true", help="log everything, kopf internals too")

    crds = commands.add_parser(
        "crds",
        help="regenerate the CRDs from the API types",
        description="Write the CustomResourceDefinitions generated from gyre_operator.api into "
        "crds/ and charts/gyre/crds/ of the checkout in the current directory, or into --output.",
    )
    crds.add_argument("--output", type=Path, help="write the CRDs into this directory instead")

    rollout = commands.add_parser(
        "rollout",
        help="show, promote, abort or retry an InferenceService's canary rollout",
        description="Manual control of a canary rollout, as Argo Rollouts users know it. "
        "promote skips the current step (--full: every step); abort rolls the canary back "
        "now; retry lets a rolled-back version be rolled out again. The spec is never "
        "changed: an annotation asks the operator, which acts and removes it.",
    )
    from gyre_operator.rollouts import add_arguments as rollout_arguments

    rollout_arguments(rollout)

    commands.add_parser(
        "local",
        help="run a local Kubernetes control plane (see `gyre local --help`)",
        add_help=False,
    )
    return parser


def run_operator(
    config: OperatorConfig, *, log_format: str = "full", verbose: bool = False, debug: bool = False
) -> int:
    """Run the kopf operator until it is stopped."""
    import kopf

    import gyre_operator.main  # noqa: F401  (registers the kopf handlers)
    from gyre_operator.metrics import serve_metrics

    kopf.configure(debug=debug, verbose=verbose, log_format=kopf.LogFormat[log_format.upper()])
    if not (verbose or debug):
        # Watch handlers only queue work: a line per event would drown the reconcile logs.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    serve_metrics(config.metrics_port)
    kopf.run(
        standalone=True,
        clusterwide=config.clusterwide,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz",
        memo=kopf.Memo(config=config),
    )
    return 0


def operator_command(args: argparse.Namespace) -> int:
    """`gyre operator`: the operator with the settings from its flags."""
    config = OperatorConfig(
        namespaces=tuple(args.namespace),
        artifact_root=args.artifact_root,
        runtime_image=args.runtime_image,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        kubeconfig=args.kubeconfig,
        artifact_secret=args.artifact_secret,
    )
    return run_operator(config, log_format=args.log_format, verbose=args.verbose, debug=args.debug)


def run_crds(args: argparse.Namespace) -> int:
    """Regenerate the CRD files and print where they went."""
    from gyre_operator.crdgen import CRD_DIRS, write_crds

    if args.output is None and not CRD_DIRS[0].is_dir():
        print(
            "gyre crds: no crds/ here: run it from the root of a Gyre checkout, or pass --output",
            file=sys.stderr,
        )
        return 2
    directories = (args.output,) if args.output else CRD_DIRS
    for path in write_crds(directories):
        print(path)
    return 0


def local_executable() -> str | None:
    """The `gyre-local` command: the one installed beside this Python, else one on PATH."""
    beside = Path(sys.executable).with_name(LOCAL_COMMAND)
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(LOCAL_COMMAND)


def run_local(argv: list[str]) -> int:
    """`gyre local ARGS...`: replace this process with `gyre-local ARGS...`."""
    executable = local_executable()
    if executable is None:
        print(
            f"gyre local needs the {LOCAL_COMMAND} command of the local extra: "
            "pip install 'gyre-operator[local]'",
            file=sys.stderr,
        )
        return 1
    os.execv(executable, [executable, *argv])


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gyre` command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["local"]:
        return run_local(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "operator":
        return operator_command(args)
    if args.command == "rollout":
        from gyre_operator.rollouts import run as run_rollout

        return run_rollout(args)
    return run_crds(args)


if __name__ == "__main__":
    sys.exit(main())
