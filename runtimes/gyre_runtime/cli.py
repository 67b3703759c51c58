"""The `gyre-runtime` command: the entrypoint of Gyre's pods.

Each subcommand is one module with `add_arguments(parser)` and `run(args) -> result`. Only the
module of the subcommand being run is imported, so `profile` never pays for scikit-learn.
A result is printed and written as the termination message; a RuntimeFailure exits 1 with
its reason and one-line message there instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import version
from types import ModuleType

from gyre_runtime.result import (
    RuntimeFailure,
    encode,
    failure_message,
    write_termination_message,
)

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "profile": ("gyre_runtime.profile", "profile a data set: digest, statistics, sample"),
    "train": ("gyre_runtime.train", "train a built-in model and export it to ONNX"),
    "publish": ("gyre_runtime.publish", "upload a custom trainer's model.onnx and metrics"),
    "verify": ("gyre_runtime.verify", "check a model file's digest and read its signature"),
    "fetch": ("gyre_runtime.fetch", "copy a pinned data set into the pod, checking its digest"),
    "serve": ("gyre_runtime.serve", "serve an ONNX model over the Open Inference Protocol v2"),
    "drift": ("gyre_runtime.drift", "check logged requests against the training data for drift"),
}


def build_parser(commands: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of `gyre-runtime` with the given subcommands (default: all)."""
    parser = argparse.ArgumentParser(
        prog="gyre-runtime",
        description="Gyre's pod entrypoint: each subcommand is one job a Gyre pod runs.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('gyre-operator')}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands if commands is not None else list(SUBCOMMANDS):
        module_name, help_text = SUBCOMMANDS[name]
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        _module(module_name).add_arguments(sub)
    return parser


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gyre-runtime` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    chosen = [argv[0]] if argv and argv[0] in SUBCOMMANDS else None
    parser = build_parser(chosen)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    module = _module(SUBCOMMANDS[args.command][0])
    try:
        text = encode(module.run(args))
    except RuntimeFailure as failure:
        text = failure_message(failure)
        print(f"{args.command} failed: {failure.reason}: {failure.message}", file=sys.stderr)
        write_termination_message(text)
        return 1
    print(text)
    write_termination_message(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
