"""`gyre-runtime publish` (a custom trainer's output) and `verify` (a registered model file)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from gyre_runtime import storage
from gyre_runtime.cli import main

FEATURES = 30
SIGNATURE = {
    "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, FEATURES]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ],
}
METRICS = {"accuracy": 0.95, "roc_auc": 0.99, "epochs": 12}


def _onnx_model(zipmap: bool) -> bytes:
    """A model as a user's trainer would make it: LogisticRegression on breast cancer."""
    x, y = load_breast_cancer(return_X_y=True)
    estimator = LogisticRegression(max_iter=3000).fit(x.astype(np.float32), y)
    model = to_onnx(
        estimator,
        initial_types=[("features", FloatTensorType([None, FEATURES]))],
        options={id(estimator): {"zipmap": zipmap}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    data: bytes = model.SerializeToString()
    return data


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    """A servable ONNX classifier: plain tensor outputs."""
    return _onnx_model(zipmap=False)


@pytest.fixture(scope="module")
def zipmap_model_bytes() -> bytes:
    """An ONNX classifier whose probabilities are a sequence of maps (ZipMap)."""
    return _onnx_model(zipmap=True)


@pytest.fixture
def trainer_output(tmp_path: Path, model_bytes: bytes) -> Path:
    """The shared directory after the user's trainer ran: model.onnx and metrics.json."""
    directory = tmp_path / "gyre-output"
    directory.mkdir()
    (directory / "model.onnx").write_bytes(model_bytes)
    (directory / "metrics.json").write_text(json.dumps(METRICS))
    return directory


@pytest.fixture
def gyre_runtime(
    termination_message: Callable[[], dict[str, Any]],
) -> Callable[[int, list[str]], dict[str, Any]]:
    """Run `gyre-runtime`, check its exit code, return its termination message."""

    def run(code: int, argv: list[str]) -> dict[str, Any]:
        assert main(argv) == code, termination_message()
        return termination_message()

    return run


def publish_args(output_dir: Path, output_uri: str, *extra: str) -> list[str]:
    """The argv of `gyre-runtime publish` as the operator builds it."""
    return [
        "publish",
        "--run",
        "run-7",
        "--model",
        "cancer",
        "--output-dir",
        str(output_dir),
        "--output-uri",
        output_uri,
        *extra,
    ]


def test_publish_uploads_the_model_and_writes_metadata(
    trainer_output: Path,
    tmp_path: Path,
    model_bytes: bytes,
    gyre_runtime: Callable[[int, list[str]], dict[str, Any]],
) -> None:
    output = (tmp_path / "store" / "models" / "cancer" / "run-7").as_uri() + "/"
    features = [f"f{i}" for i in range(FEATURES)]
    dataset_digest = "ab" * 32
    result = gyre_runtime(
        0,
        publish_args(
            trainer_output,
            output,
            "--features",
            json.dumps(features),
            "--dataset-uri",
            "s3://data/cancer.csv",
            "--dataset-digest",
            dataset_digest,
        ),
    )

    sha256 = hashlib.sha256(model_bytes).hexdigest()
    assert result == {
        "modelUri": output + "model.onnx",
        "sha256": sha256,
        "metadataUri": output + "metadata.json",
        "metrics": {"accuracy": 0.95, "roc_auc": 0.99, "epochs": 12.0},
        "signature": SIGNATURE,
        "features": features,
    }
    assert storage.read_bytes(result["modelUri"]) == model_bytes
    metadata = json.loads(storage.read_bytes(result["metadataUri"]))
    assert metadata["run"] == "run-7"
    assert metadata["model"] == "cancer"
    assert metadata["algorithm"] == "custom"
    assert metadata["metrics"] == result["metrics"]
    assert metadata["signature"] == SIGNATURE
    assert metadata["features"] == features
    assert metadata["dataset"] == {"uri": "s3://data/cancer.csv", "digest": dataset_digest}
    assert metadata["sha256"] == sha256
    assert set(metadata["libraries"]) == {"onnx", "onnxruntime"}


def test_publish_to_s3_without_optional_arguments(
    trainer_output: Path,
    s3_bucket: str,
    model_bytes: bytes,
    gyre_runtime: Callable[[int, list[str]], dict[str, Any]],
) -> None:
    output = f"{s3_bucket}/models/cancer/run-7/"
    result = gyre_runtime(0, publish_args(trainer_output, output))

    assert "features" not in result
    assert storage.read_bytes(output + "model.onnx") == model_bytes
    metadata = json.loads(storage.read_bytes(output + "metadata.json"))
    assert "dataset" not in metadata
    assert metadata["sha256"] == result["sha256"] == hashlib.sha256(model_bytes).hexdigest()


def _remove(name: str) -> Callable[[Path, bytes], None]:
    return lambda directory, _: (directory / name).unlink()


def _write(name: str, content: str) -> Callable[[Path, bytes], None]:
    return lambda directory, _: (directory / name).write_text(content)


def _zipmap_model(directory: Path, zipmap_model: bytes) -> None:
    (directory / "model.onnx").write_bytes(zipmap_model)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_remove("model.onnx"), "model.onnx: not found in"),
        (_write("model.onnx", "not a model"), "model.onnx: onnxruntime cannot load it"),
        (_write("model.onnx", ""), "model.onnx: onnxruntime cannot load it"),
        (_zipmap_model, "model.onnx: 'output_probability' is a sequence_type, not a tensor"),
        (_remove("metrics.json"), "metrics.json: not found in"),
        (_write("metrics.json", "accuracy: 0.9"), "metrics.json: not readable JSON"),
        (_write("metrics.json", "[0.9]"), "metrics.json: must be a JSON object"),
        (_write("metrics.json", '{"accuracy": "high"}'), "'accuracy': \"high\""),
        (_write("metrics.json", '{"loss": NaN, "f1": 0.5}'), "'loss': NaN"),
        (_write("metrics.json", '{"converged": true}'), "'converged': true"),
        (_write("metrics.json", '{"per_class": {"a": 1}}'), "'per_class': {\"a\": 1}"),
    ],
)
def test_publish_refuses_invalid_output(
    trainer_output: Path,
    tmp_path: Path,
    zipmap_model_bytes: bytes,
    gyre_runtime: Callable[[int, list[str]], dict[str, Any]],
    damage: Callable[[Path, bytes], None],
    message: str,
) -> None:
    damage(trainer_output, zipmap_model_bytes)
    store = tmp_path / "store"

    failure = gyre_runtime(1, publish_args(trainer_output, store.as_uri() + "/"))

    assert failure["reason"] == "InvalidOutput"
    assert message in failure["message"]
    assert failure["file"] == failure["message"].split(":")[0]
    assert not store.exists()


def test_publish_refuses_a_feature_list_the_model_cannot_take(
    trainer_output: Path, tmp_path: Path, gyre_runtime: Callable[[int, list[str]], dict[str, Any]]
) -> None:
    argv = publish_args(trainer_output, tmp_path.as_uri() + "/out/", "--features", '["a", "b"]')

    failure = gyre_runtime(1, argv)

    assert failure["reason"] == "InvalidOutput"
    assert failure["message"] == (
        "model.onnx: input 'features' takes 30 features, but 2 are declared"
    )


def test_publish_needs_dataset_uri_and_digest_together(
    trainer_output: Path, tmp_path: Path, gyre_runtime: Callable[[int, list[str]], dict[str, Any]]
) -> None:
    argv = publish_args(trainer_output, tmp_path.as_uri() + "/out/", "--dataset-uri", "s3://d/x")

    failure = gyre_runtime(1, argv)

    assert failure["reason"] == "InvalidArgument"


# --- verify ---------------------------------------------------------------------------------


def test_verify_reports_digest_and_signature(
    tmp_path: Path, model_bytes: bytes, gyre_runtime: Callable[[int, list[str]], dict[str, Any]]
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(model_bytes)
    sha256 = hashlib.sha256(model_bytes).hexdigest()

    result = gyre_runtime(0, ["verify", "--uri", path.as_uri(), "--sha256", sha256.upper()])

    assert result == {"sha256": sha256, "signature": SIGNATURE}


def test_verify_on_s3(
    s3_bucket: str, model_bytes: bytes, gyre_runtime: Callable[[int, list[str]], dict[str, Any]]
) -> None:
    uri = f"{s3_bucket}/elsewhere/model.onnx"
    sha256 = storage.write_bytes(uri, model_bytes)

    result = gyre_runtime(0, ["verify", "--uri", uri, "--sha256", sha256])

    assert result == {"sha256": sha256, "signature": SIGNATURE}


def test_verify_digest_mismatch(
    tmp_path: Path, model_bytes: bytes, gyre_runtime: Callable[[int, list[str]], dict[str, Any]]
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(model_bytes)
    actual = hashlib.sha256(model_bytes).hexdigest()

    failure = gyre_runtime(1, ["verify", "--uri", path.as_uri(), "--sha256", "0" * 64])

    assert failure["reason"] == "DigestMismatch"
    assert failure["message"] == (
        f"sha256 of {path.as_uri()} is {actual}, spec.artifact.sha256 is {'0' * 64}"
    )


@pytest.mark.parametrize(
    "content", [b"not an onnx model", b"", b"\x08\x07"], ids=["text", "empty", "no-graph"]
)
def test_verify_refuses_what_is_not_a_model(
    tmp_path: Path, content: bytes, gyre_runtime: Callable[[int, list[str]], dict[str, Any]]
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    sha256 = hashlib.sha256(content).hexdigest()

    failure = gyre_runtime(1, ["verify", "--uri", path.as_uri(), "--sha256", sha256])

    assert failure["reason"] == "InvalidModel"
    assert failure["message"].startswith(f"{path.as_uri()} is not a servable ONNX model")


def test_verify_refuses_a_zipmap_model(
    tmp_path: Path,
    zipmap_model_bytes: bytes,
    gyre_runtime: Callable[[int, list[str]], dict[str, Any]],
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(zipmap_model_bytes)
    sha256 = hashlib.sha256(zipmap_model_bytes).hexdigest()

    failure = gyre_runtime(1, ["verify", "--uri", path.as_uri(), "--sha256", sha256])

    assert failure["reason"] == "InvalidModel"
    assert "not a tensor" in failure["message"]


def test_verify_missing_file_is_unreadable(
    tmp_path: Path, gyre_runtime: Callable[[int, list[str]], dict[str, Any]]
) -> None:
    uri = (tmp_path / "absent.onnx").as_uri()

    failure = gyre_runtime(1, ["verify", "--uri", uri, "--sha256", "0" * 64])

    assert failure["reason"] == "SourceUnreadable"
    assert failure["uri"] == uri
    assert uri in failure["message"]


def test_verify_unreachable_s3_endpoint_is_unreadable(
    monkeypatch: pytest.MonkeyPatch, gyre_runtime: Callable[[int, list[str]], dict[str, Any]]
) -> None:
    # Port 1 on loopback refuses connections: the endpoint is down.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    failure = gyre_runtime(1, ["verify", "--uri", "s3://models/m.onnx", "--sha256", "0" * 64])

    assert failure["reason"] == "SourceUnreadable"
    assert "s3://models/m.onnx" in failure["message"]


def test_publish_and_verify_do_not_import_scikit_learn(
    trainer_output: Path, tmp_path: Path, model_bytes: bytes
) -> None:
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    script = f"""
import sys
from gyre_runtime.cli import main
assert main({publish_args(trainer_output, tmp_path.as_uri() + "/out/")!r}) == 0
assert main(["verify", "--uri", {(trainer_output / "model.onnx").as_uri()!r},
             "--sha256", {sha256!r}]) == 0
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("sklearn", "skl2onnx"))
assert not loaded, loaded
"""
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "GYRE_TERMINATION_MESSAGE_PATH": str(tmp_path / "termination-log")},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
