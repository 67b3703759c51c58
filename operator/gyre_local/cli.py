"""The `gyre-local` command (`gyre local` runs it): `up` runs the cluster, `demo` the demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from gyre_local import demo
from gyre_local.cluster import LocalCluster
from gyre_local.controllers.informer import EventHandler, watch_forever
from gyre_local.kubelet.kubelet import MODES
from gyre_local.proxy.services import URL_ANNOTATION

DEFAULT_STATE_DIR = Path.home() / ".gyre" / "local"


def parser() -> argparse.ArgumentParser:
    """The argument parser of `gyre local`."""
    root = argparse.ArgumentParser(
        prog="gyre local", description="A local Kubernetes control plane for Gyre."
    )
    commands = root.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run the local cluster in the foreground")
    add_cluster_arguments(up, state_dir=DEFAULT_STATE_DIR)
    up.add_argument(
        "--crds",
        type=Path,
        action="append",
        default=[],
        help="a CRD YAML file or directory to load at start (repeatable)",
    )
    up.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="IMAGE=EXECUTABLE",
        help="run IMAGE as the local EXECUTABLE in process mode (repeatable)",
    )
    demo_command = commands.add_parser(
        "demo",
        help="start the local cluster with Gyre's CRDs, the wine data and the examples, run "
        "`gyre operator` on it, send the model traffic, shift it and follow the loop live: "
        "drift, retraining, canary, promotion",
    )
    add_cluster_arguments(demo_command, state_dir=None)
    demo_command.add_argument(
        "--examples",
        type=Path,
        default=demo.EXAMPLES_DIR,
        help="directory of manifests to apply (default: %(default)s under the current directory)",
    )
    demo_command.add_argument(
        "--metrics-port", type=int, help="operator /metrics port (default: a free one)"
    )
    demo_command.add_argument(
        "--health-port", type=int, help="operator /healthz port (default: a free one)"
    )
    demo_command.add_argument(
        "--exit-when-done",
        action="store_true",
        help="exit once the retrained version serves (0), at the first failure or timeout (1)",
    )
    demo_command.add_argument(
        "--no-shift",
        action="store_true",
        help="keep the traffic and the data steady: no drift, no retraining (with "
        "--exit-when-done, exit after the second drift check without drift)",
    )
    demo_command.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for the loop to close (default: %(default)g)",
    )
    return root


def add_cluster_arguments(command: argparse.ArgumentParser, *, state_dir: Path | None) -> None:
    """The --kubelet, --port and --state-dir options of commands that start the cluster."""
    command.add_argument(
        "--kubelet",
        choices=MODES,
        default="process",
        help="run pods as local processes (default) or only simulate them",
    )
    command.add_argument("--port", type=int, default=0, help="API server port (default: any free)")
    command.add_argument(
        "--state-dir",
        type=Path,
        default=state_dir,
        help="kubeconfig, pod directories and logs (default: "
        f"{state_dir or 'a new temporary directory'})",
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of `gyre local`; returns the exit status."""
    args = parser().parse_args(argv)
    if args.command == "demo":
        return demo.run(args)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    image_map: dict[str, str] = {}
    for item in args.image:
        image, separator, executable = item.partition("=")
        if not separator or not image or not executable:
            print(f"--image expects IMAGE=EXECUTABLE, got {item!r}", file=sys.stderr)
            return 2
        image_map[image] = executable
    cluster = LocalCluster(
        kubelet=args.kubelet,
        port=args.port,
        state_dir=args.state_dir,
        image_map=image_map,
        crds=args.crds,
    )
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(_up(cluster, sys.stdout))
    return 0


async def _up(cluster: LocalCluster, out: TextIO) -> None:
    """Run the cluster, announce it and its Services' URLs, until Ctrl-C or SIGTERM."""
    main_task = asyncio.current_task()
    assert main_task is not None
    # Both signals explicitly: a process started in the background of a shell inherits an
    # ignored SIGINT, which Python would otherwise leave ignored.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(stop_signal, main_task.cancel)
    await cluster.astart()
    try:
        print(f"gyre local cluster ({cluster.kubelet.mode} kubelet) at {cluster.url}", file=out)
        print(f"export KUBECONFIG={cluster.kubeconfig_path}", file=out, flush=True)
        await watch_forever(cluster.store, "", "services", _announcer(out))
    finally:
        await cluster.astop()
        print("gyre local cluster stopped", file=out, flush=True)


def _announcer(out: TextIO) -> EventHandler:
    announced: dict[tuple[str, str], str] = {}

    def announce(event_type: str, service: dict[str, Any]) -> None:
        metadata = service.get("metadata") or {}
        key = (metadata.get("namespace", ""), metadata.get("name", ""))
        url = (metadata.get("annotations") or {}).get(URL_ANNOTATION)
        if event_type == "DELETED" or not url:
            announced.pop(key, None)
        elif announced.get(key) != url:
            announced[key] = url
            print(f"service {key[0]}/{key[1]}: {url}", file=out, flush=True)

    return announce


if __name__ == "__main__":
    sys.exit(main())
