"""The `gyre-runtime` command: the entrypoint of Gyre's pods."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `gyre-runtime` command."""
    parser = argparse.ArgumentParser(
        prog="gyre-runtime",
        description="Gyre's pod entrypoint: each subcommand is one job a Gyre pod runs.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('gyre-operator')}"
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gyre-runtime` command."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        build_parser().print_help(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
