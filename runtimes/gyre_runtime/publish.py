"""`gyre-runtime publish`: register what a user's own trainer image produced.

The trainer (an init container) writes model.onnx and metrics.json (a flat JSON object of
metric name -> number) to a shared directory; this checks both, uploads the model and
writes metadata.json exactly as the built-in trainer does, with algorithm "custom".
No scikit-learn here: this runs next to users' images.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gyre_runtime.model_artifact import (
    MODEL_FILE,
    DatasetVersion,
    ModelFileError,
    ModelRecord,
    Signature,
    inspect_model,
    parse_features,
    store_model,
)
from gyre_runtime.result import RuntimeFailure

METRICS_FILE = "metrics.json"
ALGORITHM = "custom"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments the operator passes to `gyre-runtime publish`."""
    parser.add_argument("--run", required=True, help="the TrainingRun's name")
    parser.add_argument("--model", required=True, help="the model to register under")
    parser.add_argument("--output-dir", required=True, type=Path, help="where the trainer wrote")
    parser.add_argument("--output-uri", required=True, help="directory URI for the model files")
    parser.add_argument("--features", help="JSON list of feature names in model input order")
    parser.add_argument("--dataset-uri", help="the data set the trainer read")
    parser.add_argument("--dataset-digest", help="its pinned content digest")


@dataclass(frozen=True)
class PublishRequest:
    """A checked `publish` invocation."""

    run: str
    model: str
    output_dir: Path
    output_uri: str
    features: list[str] | None
    dataset: DatasetVersion | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PublishRequest:
        """Check the arguments' values; RuntimeFailure for a bad one."""
        if (args.dataset_uri is None) != (args.dataset_digest is None):
            raise RuntimeFailure(
                "InvalidArgument", "--dataset-uri and --dataset-digest go together"
            )
        dataset = (
            DatasetVersion(uri=args.dataset_uri, digest=args.dataset_digest.lower())
            if args.dataset_uri is not None
            else None
        )
        return cls(
            run=args.run,
            model=args.model,
            output_dir=args.output_dir,
            output_uri=args.output_uri,
            features=parse_features(args.features),
            dataset=dataset,
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Check the trainer's output, upload it, write metadata.json; return the result."""
    request = PublishRequest.from_args(args)
    model_path = _output_file(request.output_dir, MODEL_FILE)
    signature = _signature(model_path)
    if request.features is not None:
        _check_feature_count(signature, request.features)
    record = ModelRecord(
        run=request.run,
        model=request.model,
        algorithm=ALGORITHM,
        metrics=read_metrics(_output_file(request.output_dir, METRICS_FILE)),
        features=request.features,
        dataset=request.dataset,
    )
    return store_model(model_path, signature, request.output_uri, record)


def _output_file(directory: Path, name: str) -> Path:
    path = directory / name
    if not path.is_file():
        raise _invalid(name, f"not found in {directory}: the trainer must write it there")
    return path


def _invalid(name: str, problem: str) -> RuntimeFailure:
    return RuntimeFailure("InvalidOutput", f"{name}: {problem}", file=name)


def _signature(path: Path) -> Signature:
    try:
        return inspect_model(path)
    except ModelFileError as error:
        raise _invalid(MODEL_FILE, str(error)) from error


def _check_feature_count(signature: Signature, features: Sequence[str]) -> None:
    # Only a single [batch, n] input says how many features the model takes.
    if len(signature.inputs) != 1 or len(signature.inputs[0].shape) != 2:
        return
    width = signature.inputs[0].shape[1]
    if width not in (-1, len(features)):
        raise _invalid(
            MODEL_FILE,
            f"input {signature.inputs[0].name!r} takes {width} features, "
            f"but {len(features)} are declared",
        )


def read_metrics(path: Path) -> dict[str, float]:
    """A metrics.json file: a flat JSON object of names to finite numbers."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise _invalid(path.name, f"not readable JSON: {error}") from error
    if not isinstance(document, dict):
        raise _invalid(path.name, f"must be a JSON object of name -> number, not {document!r}")
    bad = [name for name, value in document.items() if not (name and _finite_number(value))]
    if bad:
        raise _invalid(
            path.name,
            "every metric must be a finite number with a non-empty name; not: "
            + ", ".join(f"{name!r}: {json.dumps(document[name])}" for name in bad),
        )
    return {name: float(value) for name, value in document.items()}


def _finite_number(value: Any) -> bool:
    # bool is an int subclass, but `true` is no metric.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
