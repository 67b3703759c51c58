"""`gyre-runtime fetch`: copy a pinned data set into the pod, checking its content digest.

A custom trainer reads plain local files: this init container downloads the data set the
run pinned (one file, or every data file of a prefix) and refuses data whose digest is not
the pinned one, so a trainer never trains on data that changed after it was profiled.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gyre_runtime import storage
from gyre_runtime.result import RuntimeFailure
from gyre_runtime.tables import dataset_files, prefix_digest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments the operator passes to `gyre-runtime fetch`."""
    parser.add_argument("--uri", required=True, help="the data set: a file or a prefix")
    parser.add_argument("--sha256", required=True, help="the pinned content digest")
    parser.add_argument(
        "--output", required=True, type=Path, help="local file (or directory for a prefix)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Download the data set to --output and check its digest; return where it went."""
    uri, files = dataset_files(args.uri)
    output: Path = args.output
    try:
        if uri.endswith("/"):
            digests = [storage.get_file(f, output / f[len(uri) :]) for f in files]
            digest = prefix_digest(uri, files, digests)
        else:
            digest = storage.get_file(uri, output)
    except storage.StorageError as error:
        raise RuntimeFailure("SourceUnreadable", str(error), uri=error.uri) from error
    if digest != args.sha256.lower():
        raise RuntimeFailure(
            "DigestMismatch",
            f"data set at {args.uri} has digest {digest}, the run pinned {args.sha256}: "
            "the data changed since it was profiled",
        )
    return {"path": str(output), "sha256": digest, "files": len(files)}
