"""Model artifacts as Gyre registers them: an ONNX file, its signature and metadata.json.

Shared by `train` (the built-in trainer), `publish` (a custom trainer's output) and `verify`
(a model registered by hand). Nothing here imports scikit-learn: `publish` and `verify` run
in users' pods.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import onnx
import onnxruntime  # type: ignore[import-untyped]

from gyre_runtime import storage
from gyre_runtime.result import TERMINATION_LIMIT, RuntimeFailure, encode

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"

# ONNX element types -> Open Inference Protocol datatypes (strings travel as BYTES).
_OIP_DATATYPES: dict[int, str] = {
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.STRING: "BYTES",
}


class ModelFileError(ValueError):
    """A file that is not an ONNX model Gyre can serve; the message says why."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model: name, OIP datatype, shape (-1 for a dynamic dim)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        """The tensor as ModelVersion's spec.signature lists it."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    """A model's inputs and outputs, in graph order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_json(self) -> dict[str, Any]:
        """The signature as ModelVersion's spec.signature holds it."""
        return {
            "inputs": [tensor.to_json() for tensor in self.inputs],
            "outputs": [tensor.to_json() for tensor in self.outputs],
        }


def load_session(source: bytes | Path) -> Any:
    """An onnxruntime CPU session of a model (bytes or a local file)."""
    try:
        return onnxruntime.InferenceSession(
            source if isinstance(source, bytes) else str(source),
            providers=["CPUExecutionProvider"],
        )
    # onnxruntime's errors (InvalidProtobuf, Fail, ...) share no base class but Exception.
    except Exception as error:
        raise ModelFileError(f"onnxruntime cannot load it: {error}") from error


def inspect_model(source: bytes | Path) -> Signature:
    """Check that onnxruntime loads a model (bytes or a local file); return its signature."""
    load_session(source)
    model = onnx.load_model_from_string(source) if isinstance(source, bytes) else onnx.load(source)
    return read_signature(model)


def read_signature(model: onnx.ModelProto) -> Signature:
    """The signature declared in an ONNX graph, shapes completed by ONNX shape inference."""
    graph = onnx.shape_inference.infer_shapes(model).graph
    initializers = {initializer.name for initializer in graph.initializer}
    # Before IR version 4, weights were also listed as graph inputs.
    inputs = [value for value in graph.input if value.name not in initializers]
    return Signature(
        inputs=tuple(_tensor_spec(value) for value in inputs),
        outputs=tuple(_tensor_spec(value) for value in graph.output),
    )


def _tensor_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    if value.type.WhichOneof("value") != "tensor_type":
        raise ModelFileError(
            f"{value.name!r} is a {value.type.WhichOneof('value')}, not a tensor: the Open "
            "Inference Protocol carries tensors only (export classifiers without ZipMap)"
        )
    tensor = value.type.tensor_type
    datatype = _OIP_DATATYPES.get(tensor.elem_type)
    if datatype is None:
        name = onnx.TensorProto.DataType.Name(tensor.elem_type)
        raise ModelFileError(
            f"{value.name!r} holds {name}, a type the Open Inference Protocol cannot carry"
        )
    if not tensor.HasField("shape"):
        raise ModelFileError(f"{value.name!r} has no shape in the graph")
    shape = tuple(dim.dim_value if dim.dim_value > 0 else -1 for dim in tensor.shape.dim)
    return TensorSpec(name=value.name, datatype=datatype, shape=shape)


@dataclass(frozen=True)
class DatasetVersion:
    """The data a model was trained on: where it was and its content digest."""

    uri: str
    digest: str


@dataclass(frozen=True)
class ModelRecord:
    """What metadata.json records about a model besides its file.

    `details` holds the trainer's own fields (task, hyperparameters, seed, ...);
    `libraries` names the distributions whose installed versions are recorded.
    """

    run: str
    model: str
    algorithm: str
    metrics: Mapping[str, float]
    features: Sequence[str] | None = None
    dataset: DatasetVersion | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    libraries: Sequence[str] = ("onnx", "onnxruntime")


@dataclass(frozen=True)
class StoredModel:
    """A model written to the artifact store."""

    uri: str
    sha256: str
    metadata_uri: str


def store_model(
    source: bytes | Path, signature: Signature, output_uri: str, record: ModelRecord
) -> dict[str, Any]:
    """Upload model.onnx and write metadata.json under output_uri; return the run's result."""
    stored = _upload(source, output_uri)
    metadata = _metadata(record, signature, stored)
    _write(stored.metadata_uri, lambda: storage.write_bytes(stored.metadata_uri, _json(metadata)))
    return run_result(stored, record, signature)


def _upload(source: bytes | Path, output_uri: str) -> StoredModel:
    uri = storage.join(output_uri, MODEL_FILE)
    if isinstance(source, bytes):
        sha256 = _write(uri, lambda: storage.write_bytes(uri, source))
    else:
        sha256 = _write(uri, lambda: storage.put_file(source, uri))
    return StoredModel(uri=uri, sha256=sha256, metadata_uri=storage.join(output_uri, METADATA_FILE))


def _write(uri: str, write: Callable[[], str]) -> str:
    try:
        sha256 = write()
    except storage.StorageError as error:
        raise RuntimeFailure("OutputUnwritable", str(error), uri=uri) from error
    return sha256


def _metadata(record: ModelRecord, signature: Signature, stored: StoredModel) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "run": record.run,
        "model": record.model,
        "algorithm": record.algorithm,
        **record.details,
        "metrics": dict(record.metrics),
        "signature": signature.to_json(),
        "libraries": library_versions(record.libraries),
        "modelUri": stored.uri,
        "sha256": stored.sha256,
    }
    if record.features is not None:
        metadata["features"] = list(record.features)
    if record.dataset is not None:
        metadata["dataset"] = {"uri": record.dataset.uri, "digest": record.dataset.digest}
    return metadata


def _json(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def library_versions(distributions: Sequence[str]) -> dict[str, str]:
    """Installed versions of the named distributions ("unknown" when not installed)."""
    return {name: _version(name) for name in distributions}


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def run_result(stored: StoredModel, record: ModelRecord, signature: Signature) -> dict[str, Any]:
    """The termination message of a run that stored a model; features go when it is too long."""
    result: dict[str, Any] = {
        "modelUri": stored.uri,
        "sha256": stored.sha256,
        "metadataUri": stored.metadata_uri,
        "metrics": dict(record.metrics),
        "signature": signature.to_json(),
    }
    if record.features is not None and _fits({**result, "features": list(record.features)}):
        result["features"] = list(record.features)
    if not _fits(result):
        raise RuntimeFailure(
            "ResultTooLarge",
            f"the result (metrics and signature) exceeds the {TERMINATION_LIMIT}-byte "
            f"termination message; the model and its metadata are at {stored.metadata_uri}",
        )
    return result


def _fits(result: Mapping[str, Any]) -> bool:
    try:
        encode(result)
    except ValueError:
        return False
    return True


def parse_features(text: str | None) -> list[str] | None:
    """The --features argument: a JSON list of distinct column names, in model input order."""
    if text is None:
        return None
    try:
        features = json.loads(text)
    except json.JSONDecodeError as error:
        raise RuntimeFailure("InvalidArgument", f"--features is not JSON: {error}") from error
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(name, str) and name for name in features)
    ):
        raise RuntimeFailure(
            "InvalidArgument", f"--features must be a non-empty JSON list of names, not {text}"
        )
    repeated = sorted({name for name in features if features.count(name) > 1})
    if repeated:
        raise RuntimeFailure("InvalidArgument", f"--features repeats {', '.join(repeated)}")
    return features
