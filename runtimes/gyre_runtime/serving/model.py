"""The served model: one ONNX file, checked against its registered digest, run by onnxruntime.

Loading fails with a RuntimeFailure the operator can read: `DigestMismatch` when the file is
not the registered one, `InvalidModel` when it cannot be read, is not a model onnxruntime
loads, has inputs or outputs the Open Inference Protocol cannot carry, or fails on a
warm-up input of zeros. A model is ready to serve once that warm-up ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime  # type: ignore[import-untyped]

from gyre_runtime import storage
from gyre_runtime.model_artifact import ModelFileError, Signature, TensorSpec, read_signature
from gyre_runtime.result import RuntimeFailure

Array = npt.NDArray[Any]

# Every Open Inference Protocol datatype (all that model_artifact's signatures name) as a
# numpy dtype, little-endian as the binary extension carries them; strings are Python
# objects, as onnxruntime takes and returns them.
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}


class ServedModel:
    """A loaded model: its identity, signature and onnxruntime session.

    `batchable` says whether requests can be stacked into one run: every input and output
    has a free leading dimension, and a one-row warm-up gave one row in every output.
    """

    def __init__(
        self,
        name: str,
        version: str,
        sha256: str,
        signature: Signature,
        providers: Sequence[str],
        session: Any,
    ) -> None:
        self.name = name
        self.version = version
        self.sha256 = sha256
        self.inputs = signature.inputs
        self.outputs = signature.outputs
        self.output_names = [tensor.name for tensor in signature.outputs]
        self.providers = tuple(providers)
        self.session = session
        self.batchable = all(
            tensor.shape and tensor.shape[0] == -1 for tensor in (*self.inputs, *self.outputs)
        )

    def run(self, feed: dict[str, Array]) -> list[Array]:
        """Run the model; outputs in graph order. onnxruntime's errors pass through."""
        outputs: list[Array] = self.session.run(self.output_names, feed)
        return outputs


def load(
    path: Path, name: str, version: str, expected_sha256: str | None, threads: int
) -> ServedModel:
    """Check the file's digest, load it into onnxruntime and run it once on zeros."""
    sha256 = _digest(path)
    if expected_sha256 is not None and sha256 != expected_sha256.lower():
        raise RuntimeFailure(
            "DigestMismatch",
            f"model file {path} is not the registered model: expected sha256 "
            f"{expected_sha256.lower()}, file has {sha256}",
        )
    try:
        signature = read_signature(onnx.load(str(path)))
    except ModelFileError as error:
        raise RuntimeFailure("InvalidModel", f"{path}: {error}") from error
    # onnx raises DecodeError, ValueError, ... for what is not a model.
    except Exception as error:
        raise RuntimeFailure("InvalidModel", f"{path} is not an ONNX model: {error}") from error
    providers = _providers()
    model = ServedModel(
        name, version, sha256, signature, providers, _session(path, providers, threads)
    )
    _warm_up(model, path)
    return model


def _digest(path: Path) -> str:
    try:
        return storage.sha256_of(str(path))
    except storage.StorageError as error:
        raise RuntimeFailure("InvalidModel", f"cannot read the model: {error}") from error


def _providers() -> tuple[str, ...]:
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ("CUDAExecutionProvider", "CPUExecutionProvider")
    return ("CPUExecutionProvider",)


def _session(path: Path, providers: Sequence[str], threads: int) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # One request runs at a time on the event loop: no parallelism across graph nodes.
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=list(providers))
    # onnxruntime's errors (InvalidGraph, Fail, ...) share no base class but Exception.
    except Exception as error:
        raise RuntimeFailure("InvalidModel", f"onnxruntime cannot load {path}: {error}") from error


def warm_up_input(tensor: TensorSpec) -> Array:
    """Zeros (empty strings) of a tensor's shape, free dimensions taken as 1."""
    shape = tuple(1 if dim < 0 else dim for dim in tensor.shape)
    if tensor.datatype == "BYTES":
        return np.full(shape, "", dtype=object)
    return np.zeros(shape, dtype=DTYPES[tensor.datatype])


def _warm_up(model: ServedModel, path: Path) -> None:
    feed = {tensor.name: warm_up_input(tensor) for tensor in model.inputs}
    try:
        outputs = model.run(feed)
    # Whatever onnxruntime raises, the model cannot serve.
    except Exception as error:
        raise RuntimeFailure(
            "InvalidModel", f"{path} fails on a warm-up input of zeros: {error}"
        ) from error
    if any(array.shape[:1] != (1,) for array in outputs):
        # Rows out do not follow rows in: each request runs on its own.
        model.batchable = False
