"""`gyre-runtime serve` over HTTP: Triton's own client, metadata, errors, batching, metrics.

One server process for the module: the wine random forest, version 3, with lineage.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families
from serve_support import Server, infer_body, running, wine_model, wine_rows

LINEAGE = {
    "modelVersion": "wine-v3",
    "trainingRun": "wine-train-7",
    "dataset": "wine",
    "datasetDigest": "9f" * 32,
}
INFER = "/v2/models/wine/infer"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wine_model(tmp_path_factory.mktemp("model") / "model.onnx")


@pytest.fixture(scope="module")
def server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    args = ["--name", "wine", "--version", "3", "--parameters", json.dumps(LINEAGE)]
    with running(model_path, tmp_path_factory.mktemp("server"), args) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    triton_client = triton.InferenceServerClient(server.url)
    yield triton_client
    triton_client.close()


@pytest.fixture(scope="module")
def reference(model_path: Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])


def expected(session: onnxruntime.InferenceSession, rows: np.ndarray) -> list[np.ndarray]:
    outputs: list[np.ndarray] = session.run(["label", "probabilities"], {"input": rows})
    return outputs


def test_health_and_server_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "gyre"
    assert metadata["extensions"] == ["binary_tensor_data"]
    assert metadata["version"]


def test_model_metadata_carries_signature_and_lineage(
    client: triton.InferenceServerClient, server: Server
) -> None:
    metadata = client.get_model_metadata("wine")
    assert metadata == client.get_model_metadata("wine", "3")
    assert metadata["name"] == "wine"
    assert metadata["versions"] == ["3"]
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 13]}]
    assert metadata["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]
    parameters = metadata["parameters"]
    assert {key: parameters[key] for key in LINEAGE} == LINEAGE
    assert len(parameters["sha256"]) == 64


def test_model_readiness(client: triton.InferenceServerClient, server: Server) -> None:
    assert client.is_model_ready("wine")
    assert client.is_model_ready("wine", "3")
    assert server.json("GET", "/v2/models/wine/ready") == (200, {"name": "wine", "ready": True})
    assert not client.is_model_ready("wine", "2")
    assert not client.is_model_ready("beer")


@pytest.mark.parametrize("binary", [False, True])
def test_inference_equals_onnxruntime(
    client: triton.InferenceServerClient,
    reference: onnxruntime.InferenceSession,
    binary: bool,
) -> None:
    rows = wine_rows(5, seed=1)
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    outputs = [
        triton.InferRequestedOutput("label", binary_data=binary),
        triton.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = client.infer("wine", [tensor], outputs=outputs, request_id="req-1")
    label, probabilities = expected(reference, rows)
    np.testing.assert_array_equal(result.as_numpy("label"), label)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), probabilities)
    response = result.get_response()
    assert (response["id"], response["model_name"], response["model_version"]) == (
        "req-1",
        "wine",
        "3",
    )


def test_outputs_default_to_all_and_binary_as_triton_asks(
    client: triton.InferenceServerClient, reference: onnxruntime.InferenceSession
) -> None:
    rows = wine_rows(3, seed=2)
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    result = client.infer("wine", [tensor], model_version="3")
    for output in result.get_response()["outputs"]:
        assert "binary_data_size" in output["parameters"]
    np.testing.assert_array_equal(result.as_numpy("label"), expected(reference, rows)[0])
    assert "id" not in result.get_response()


def test_one_output_chosen(server: Server) -> None:
    body = json.loads(infer_body(wine_rows(2)))
    body["outputs"] = [{"name": "probabilities"}]
    status, document = server.json("POST", INFER, body)
    assert status == 200
    assert [output["name"] for output in document["outputs"]] == ["probabilities"]
    assert document["outputs"][0]["shape"] == [2, 3]
    assert len(document["outputs"][0]["data"]) == 6


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v2/models/beer/infer", 404, "unknown model 'beer': this server serves 'wine'"),
        ("/v2/models/wine/versions/2/infer", 404, "has no version '2'"),
        ("/v2/models/beer", 404, "unknown model 'beer'"),
        ("/v2/models/wine/versions/9/ready", 404, "has no version '9'"),
        ("/v2/nothing", 404, "no such endpoint"),
    ],
)
def test_unknown_models_versions_and_paths(
    server: Server, path: str, status: int, message: str
) -> None:
    method = "POST" if path.endswith("/infer") else "GET"
    code, _, data = server.request(method, path, infer_body(wine_rows(1)))
    assert code == status
    assert message in json.loads(data)["error"]


@pytest.mark.parametrize(
    "path", ["/v2/models/%77ine/versions/3?verbose=1", "http://any.host/v2/models/wine"]
)
def test_encoded_query_and_absolute_paths_route_alike(server: Server, path: str) -> None:
    status, document = server.json("GET", path)
    assert status == 200 and document["name"] == "wine"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "features"}, "unknown input 'features': the model takes 'input'"),
        ({"datatype": "INT64"}, "input 'input' expects datatype FP32, got INT64"),
        ({"shape": [1, 12]}, "input 'input' expects shape [-1, 13] (-1: any size), got [1, 12]"),
        ({"shape": [13]}, "expects a shape like [-1, 13]"),
        ({"data": [1.0] * 12}, "input 'input' has 12 values, shape [1, 13] needs 13"),
        ({"data": ["a"] * 13}, "its data holds values that are not numbers"),
    ],
)
def test_bad_tensors_are_refused_with_what_was_expected(
    server: Server, change: dict[str, object], message: str
) -> None:
    document = json.loads(infer_body(wine_rows(1)))
    document["inputs"][0].update(change)
    status, answer = server.json("POST", INFER, document)
    assert status == 400
    assert message in answer["error"]


def test_malformed_bodies(server: Server) -> None:
    status, _, data = server.request("POST", INFER, b'{"inputs": [')
    assert status == 400 and "not valid JSON" in json.loads(data)["error"]
    headers = {"Inference-Header-Content-Length": "5000"}
    status, _, data = server.request("POST", INFER, infer_body(wine_rows(1)), headers)
    assert status == 400 and "Inference-Header-Content-Length is 5000" in json.loads(data)["error"]
    headers = {"Inference-Header-Content-Length": "ten"}
    status, _, data = server.request("POST", INFER, infer_body(wine_rows(1)), headers)
    assert status == 400 and "non-negative integer" in json.loads(data)["error"]


def test_concurrent_requests_are_batched(
    server: Server, reference: onnxruntime.InferenceSession
) -> None:
    before = histogram(server.metrics(), "gyre_inference_batch_size")
    clients, requests_each = 32, 15
    rows = wine_rows(clients * requests_each, seed=3)
    answers: dict[int, list[int]] = {}
    start = threading.Barrier(clients)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        start.wait()
        labels = []
        for i in range(requests_each):
            row = rows[index * requests_each + i : index * requests_each + i + 1]
            connection.request("POST", INFER, infer_body(row, f"{index}-{i}"))
            document = json.loads(connection.getresponse().read())
            assert document["id"] == f"{index}-{i}"
            labels += document["outputs"][0]["data"]
        answers[index] = labels
        connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    served = [label for index in range(clients) for label in answers[index]]
    assert served == expected(reference, rows)[0].tolist()
    after = histogram(server.metrics(), "gyre_inference_batch_size")
    runs = after["count"] - before["count"]
    assert after["sum"] - before["sum"] == clients * requests_each
    # Some runs stacked several requests: fewer runs than requests.
    assert runs < clients * requests_each
    assert after["1.0"] - before["1.0"] < runs


def histogram(text: str, name: str) -> dict[str, float]:
    """A histogram's cumulative buckets by upper bound, plus count and sum."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                values[sample.labels["le"]] = sample.value
            elif sample.name.endswith("_count"):
                values["count"] = sample.value
            elif sample.name.endswith("_sum"):
                values["sum"] = sample.value
    return values


def test_metrics(server: Server) -> None:
    server.request("POST", INFER, infer_body(wine_rows(1)))
    server.request("POST", INFER, b"{}")
    families = {family.name: family for family in text_string_to_metric_families(server.metrics())}
    requests = {
        sample.labels["code"]: sample.value
        for sample in families["gyre_inference_requests"].samples
        if sample.name == "gyre_inference_requests_total"
    }
    assert requests["200"] >= 1 and requests["400"] >= 1 and requests["500"] == 0
    for sample in families["gyre_inference_requests"].samples:
        assert (sample.labels["model"], sample.labels["version"]) == ("wine", "3")
    (errors,) = families["gyre_inference_errors"].samples
    assert errors.value == 0
    duration = histogram(server.metrics(), "gyre_inference_request_duration_seconds")
    assert duration["+Inf"] == duration["count"] == sum(requests.values())
    assert list(duration)[:3] == ["0.0005", "0.001", "0.0025"]
    assert duration["10.0"] <= duration["+Inf"]
    (in_flight,) = families["gyre_inference_in_flight"].samples
    assert in_flight.value == 0
    (info,) = families["gyre_model_info"].samples
    assert info.value == 1 and len(info.labels["sha256"]) == 64
