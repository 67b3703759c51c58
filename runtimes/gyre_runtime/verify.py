"""`gyre-runtime verify`: check a user-registered model file and read its signature.

One streaming read computes the sha256 and keeps the bytes for onnxruntime. No
scikit-learn here: this runs for models trained anywhere.
"""

from __future__ import annotations

import argparse
from typing import Any

from gyre_runtime import storage
from gyre_runtime.model_artifact import ModelFileError, inspect_model
from gyre_runtime.result import RuntimeFailure


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments the operator passes to `gyre-runtime verify`."""
    parser.add_argument("--uri", required=True, help="the model file (spec.artifact.uri)")
    parser.add_argument("--sha256", required=True, help="its expected digest (spec.artifact)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Check the file's digest and that onnxruntime loads it; return digest and signature."""
    try:
        data, sha256 = storage.read_verified(args.uri)
    except storage.StorageError as error:
        raise RuntimeFailure("SourceUnreadable", str(error), uri=args.uri) from error
    expected = args.sha256.lower()
    if sha256 != expected:
        raise RuntimeFailure(
            "DigestMismatch",
            f"sha256 of {args.uri} is {sha256}, spec.artifact.sha256 is {expected}",
            sha256=sha256,
        )
    try:
        signature = inspect_model(data)
    except ModelFileError as error:
        raise RuntimeFailure(
            "InvalidModel", f"{args.uri} is not a servable ONNX model: {error}"
        ) from error
    return {"sha256": sha256, "signature": signature.to_json()}
