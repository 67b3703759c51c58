"""`gyre rollout status|promote|abort|retry NAME`: manual control of a canary rollout.

As with Argo Rollouts' kubectl plugin, the command never edits the spec (so a GitOps tool
sees no drift): it writes the annotation gyre.dev/rollout-action, which the operator acts
on and removes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from gyre_operator.api import API_VERSION, InferenceService
from gyre_operator.builders.inferenceservice import ACTION_ANNOTATION
from gyre_operator.kube import Kube

ACTIONS = ("status", "promote", "abort", "retry")
WATCH_PERIOD = 1.0


class RolloutError(Exception):
    """The action does not apply to the InferenceService as it is; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `gyre rollout`."""
    parser.add_argument("action", choices=ACTIONS, help="what to do")
    parser.add_argument("name", help="the InferenceService")
    parser.add_argument("-n", "--namespace", default="default", help="its namespace")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: KUBECONFIG)")
    parser.add_argument(
        "--full", action="store_true", help="promote: skip every remaining step, not only this one"
    )
    parser.add_argument(
        "--version", type=int, help="retry: the rolled-back version (default: the newest)"
    )
    parser.add_argument(
        "-w", "--watch", action="store_true", help="status: print again on every change"
    )


def request_for(action: str, status: dict[str, Any], *, full: bool, version: int | None) -> str:
    """The annotation value asking the operator for an action; RolloutError when it does
    not apply (no canary to promote or abort, no such rolled-back version to retry)."""
    if action in ("promote", "abort"):
        if not status.get("canaryVersion"):
            raise RolloutError(f"no rollout is running: nothing to {action}")
        return "promote-full" if action == "promote" and full else action
    failed = [f["version"] for f in status.get("failedVersions") or []]
    if not failed:
        raise RolloutError("no version was rolled back: nothing to retry")
    if version is not None and version not in failed:
        raise RolloutError(f"version {version} was not rolled back (rolled back: {failed})")
    return f"retry={version if version is not None else failed[-1]}"


def describe(obj: dict[str, Any]) -> str:
    """A rollout's state in a few lines, as `gyre rollout status` prints it."""
    spec, status = obj["spec"], obj.get("status") or {}
    wanted = f"version {spec['modelVersion']}" if spec.get("modelVersion") else "track latest"
    lines = [
        f"Name:       {obj['metadata']['namespace']}/{obj['metadata']['name']}",
        f"Model:      {spec['model']} ({wanted})",
        f"Phase:      {status.get('phase', 'Unknown')}",
        f"Stable:     {_version(status.get('stableVersion'))}",
    ]
    if status.get("canaryVersion"):
        steps = len((spec.get("rollout") or {}).get("steps") or [])
        step = status.get("currentStep") or 0
        where = "promoting" if step >= steps else f"step {step + 1} of {steps}"
        lines.append(
            f"Canary:     {_version(status['canaryVersion'])}, {where}, "
            f"weight {status.get('canaryWeight', 0)}%"
        )
    analysis = status.get("analysis") or {}
    if analysis.get("lastResult"):
        lines.append(
            f"Analysis:   {analysis['lastResult']} (failed intervals {analysis.get('failures', 0)})"
        )
        for side in ("canary", "stable"):
            if analysis.get(side):
                lines.append(f"  {side + ':':8} {_figures(analysis[side])}")
    for failed in status.get("failedVersions") or []:
        lines.append(
            f"Rolled back: {_version(failed['version'])} {failed['reason']}: "
            f"{failed.get('message', '')}"
        )
    for condition in status.get("conditions") or []:
        lines.append(
            f"{condition['type'] + ':':20} {condition['status']} {condition['reason']}: "
            f"{condition.get('message', '')}"
        )
    if status.get("url"):
        lines.append(f"URL:        {status['url']}")
    return "\n".join(lines)


def _version(number: int | None) -> str:
    return f"v{number}" if number else "-"


def _figures(figures: dict[str, Any]) -> str:
    text = f"{figures.get('requests', 0)} requests"
    if figures.get("errorRate") is not None:
        text += f", {figures['errorRate']:.2%} errors"
    if figures.get("latencyP99Ms") is not None:
        text += f", p99 {figures['latencyP99Ms']:.1f} ms"
    return text


async def _get(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = await kube.get(API_VERSION, InferenceService.info.kind, namespace, name)
    if obj is None:
        raise RolloutError(f"InferenceService {namespace}/{name} not found")
    return obj


async def _run(args: argparse.Namespace) -> int:
    kube = Kube.connect(args.kubeconfig)
    obj = await _get(kube, args.namespace, args.name)
    if args.action == "status":
        shown = describe(obj)
        print(shown, flush=True)
        while args.watch:
            await asyncio.sleep(WATCH_PERIOD)
            latest = describe(await _get(kube, args.namespace, args.name))
            if latest != shown:
                print(f"\n--- {time.strftime('%H:%M:%S')}\n{latest}", flush=True)
                shown = latest
        return 0
    request = request_for(
        args.action, obj.get("status") or {}, full=args.full, version=args.version
    )
    await kube.patch_annotations(obj, {ACTION_ANNOTATION: request})
    print(f"inferenceservice {args.namespace}/{args.name}: {request} requested")
    return 0


def run(args: argparse.Namespace) -> int:
    """Carry out `gyre rollout ...`; 1 with a one-line reason when it does not apply."""
    try:
        return asyncio.run(_run(args))
    except RolloutError as error:
        print(f"gyre rollout {args.action}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
