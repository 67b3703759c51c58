"""The inference request and response codec (no server): JSON, binary tensors, BYTES, and
every way a request can be wrong."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from serve_support import gather_model, strings_model, wine_model, wine_rows

from gyre_runtime.result import RuntimeFailure
from gyre_runtime.serving import model as served
from gyre_runtime.serving.protocol import Codec, ProtocolError, RunOutputs


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> served.ServedModel:
    path = wine_model(tmp_path_factory.mktemp("wine") / "model.onnx")
    return served.load(path, "wine", "3", None, 1)


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory) -> served.ServedModel:
    path = strings_model(tmp_path_factory.mktemp("words") / "model.onnx")
    return served.load(path, "words", "1", None, 1)


def wine_request(rows: np.ndarray, **extra: Any) -> bytes:
    entry = {"name": "input", "shape": list(rows.shape), "datatype": "FP32"}
    entry["data"] = rows.ravel().tolist()
    return orjson.dumps({"inputs": [entry], **extra})


def binary_request(
    tensors: list[tuple[dict[str, Any], bytes]], **extra: Any
) -> tuple[bytes, bytes]:
    """A binary-extension body and its Inference-Header-Content-Length."""
    inputs = [{**entry, "parameters": {"binary_data_size": len(data)}} for entry, data in tensors]
    header = orjson.dumps({"inputs": inputs, **extra})
    return header + b"".join(data for _, data in tensors), str(len(header)).encode()


def test_json_rows_decode_to_the_model_dtype(wine: served.ServedModel) -> None:
    rows = wine_rows(3)
    request = Codec(wine).decode(wine_request(rows, id="r-1"), None, "origin")
    array = request.inputs["input"]
    assert array.dtype == np.float32 and array.shape == (3, 13)
    np.testing.assert_array_equal(array, rows)
    assert (request.id, request.rows, request.batch_key, request.origin) == (
        "r-1",
        3,
        (13,),
        "origin",
    )


def test_nested_lists_and_integers_are_accepted_for_fp32(wine: served.ServedModel) -> None:
    nested = [[int(value) for value in row] for row in wine_rows(2)]
    body = orjson.dumps(
        {"inputs": [{"name": "input", "shape": [2, 13], "datatype": "FP32", "data": nested}]}
    )
    array = Codec(wine).decode(body, None, None).inputs["input"]
    np.testing.assert_array_equal(array, np.array(nested, dtype=np.float32))


def test_binary_inputs_decode_to_the_values_sent(wine: served.ServedModel) -> None:
    rows = wine_rows(4)
    body, length = binary_request(
        [({"name": "input", "shape": [4, 13], "datatype": "FP32"}, rows.tobytes())]
    )
    request = Codec(wine).decode(body, length, None)
    np.testing.assert_array_equal(request.inputs["input"], rows)


def tensor(fields: bytes) -> bytes:
    """A request whose one input is named and typed right, with these other fields."""
    return b'{"inputs": [{"name": "input", "datatype": "FP32", %s}]}' % fields


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "'inputs' must be a non-empty list"),
        (b'{"inputs": []}', "'inputs' must be a non-empty list"),
        (b'{"inputs": [3]}', "each input must be a JSON object"),
        (b'{"inputs": [{"name": "x"}]}', "unknown input 'x': the model takes 'input'"),
        (b'{"inputs": [{"name": ["input"]}]}', "unknown input ['input']"),
        (
            b'{"inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 13], "data": []}]}',
            "input 'input' expects datatype FP32, got INT64",
        ),
        (
            tensor(b'"shape": [13], "data": []'),
            "input 'input' expects a shape like [-1, 13] (-1: any size), got [13]",
        ),
        (
            tensor(b'"shape": [1, 12], "data": []'),
            "input 'input' expects shape [-1, 13] (-1: any size), got [1, 12]",
        ),
        (
            tensor(b'"shape": [1.0, 13], "data": []'),
            "expects a shape like [-1, 13]",
        ),
        (
            tensor(b'"shape": [-1, 13], "data": []'),
            "expects a shape like [-1, 13]",
        ),
        (
            tensor(b'"shape": [0, 13], "data": []'),
            "input 'input' is empty",
        ),
        (
            tensor(b'"shape": [1, 13], "data": [1, 2]'),
            "input 'input' has 2 values, shape [1, 13] needs 13",
        ),
        (
            tensor(b'"shape": [1, 13], "data": "x"'),
            "needs 'data' (a list) or binary_data_size",
        ),
        (
            tensor(b'"shape": [1, 2], "data": [1, "a"]'),
            "expects shape [-1, 13]",
        ),
        (
            tensor(b'"shape": [1, 13], "data": [' + b"null," * 12 + b"1]"),
            "input 'input' is FP32: its data holds values that are not numbers",
        ),
        (
            tensor(b'"shape": [1, 13], "data": [[1, 2], [3]]'),
            "must be a flat list of 13 numbers or nested lists of shape [1, 13]",
        ),
        (
            tensor(b'"shape": [1, 13], "data": [], "parameters": {"binary_data_size": 52}'),
            "has no Inference-Header-Content-Length header",
        ),
    ],
)
def test_bad_json_requests_say_what_was_expected(
    wine: served.ServedModel, body: bytes, message: str
) -> None:
    with pytest.raises(ProtocolError) as error:
        Codec(wine).decode(body, None, None)
    assert message in error.value.message


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"id": 7}, "'id' must be a string"),
        ({"outputs": [{"name": "score"}]}, "unknown output 'score': the model has 'label'"),
        ({"outputs": "label"}, "'outputs' must be a list"),
        ({"outputs": [{"name": "label", "parameters": {"binary_data": 1}}]}, "true or false"),
        ({"parameters": {"binary_data_output": "yes"}}, "true or false"),
        ({"outputs": [{"name": "label", "parameters": {"classification": 2}}]}, "classification"),
    ],
)
def test_bad_request_fields(wine: served.ServedModel, extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError) as error:
        Codec(wine).decode(wine_request(wine_rows(1), **extra), None, None)
    assert message in error.value.message


def test_missing_and_repeated_inputs(tmp_path: Path) -> None:
    graph_path = tmp_path / "two.onnx"
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 2]),
        ],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, [None, 2])],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), graph_path)
    codec = Codec(served.load(graph_path, "add", "1", None, 1))
    a = {"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}
    with pytest.raises(ProtocolError, match="missing input"):
        codec.decode(orjson.dumps({"inputs": [a]}), None, None)
    with pytest.raises(ProtocolError, match="given twice"):
        codec.decode(orjson.dumps({"inputs": [a, a]}), None, None)
    b = {**a, "name": "b", "shape": [2, 1]}
    with pytest.raises(ProtocolError, match="expects shape"):
        codec.decode(orjson.dumps({"inputs": [a, b]}), None, None)
    request = codec.decode(orjson.dumps({"inputs": [a, {**a, "name": "b"}]}), None, None)
    assert request.batch_key == ((2,), (2,)) and request.rows == 1


@pytest.mark.parametrize(
    ("length", "tail", "message"),
    [
        (b"abc", b"", "must be a non-negative integer"),
        (b"-1", b"", "must be a non-negative integer"),
        (b"100000", b"", "but the body has"),
        (b"", b"", "must be a non-negative integer"),
        (None, b"", "declares 52 bytes of binary data, but only 0 remain"),
        (None, b"\0" * 60, "8 bytes of binary data follow the inputs unclaimed"),
    ],
)
def test_malformed_binary_requests(
    wine: served.ServedModel, length: bytes | None, tail: bytes, message: str
) -> None:
    rows = wine_rows(1)
    body, header_length = binary_request(
        [({"name": "input", "shape": [1, 13], "datatype": "FP32"}, rows.tobytes())]
    )
    if length is None:
        body = body[: int(header_length)] + tail
    with pytest.raises(ProtocolError) as error:
        Codec(wine).decode(body, length if length is not None else header_length, None)
    assert message in error.value.message


def test_binary_size_must_match_the_shape(wine: served.ServedModel) -> None:
    body, length = binary_request(
        [({"name": "input", "shape": [2, 13], "datatype": "FP32"}, wine_rows(1).tobytes())]
    )
    with pytest.raises(ProtocolError, match=r"needs 104 bytes of FP32, binary_data_size is 52"):
        Codec(wine).decode(body, length, None)


def test_integer_inputs_refuse_fractions_and_out_of_range_values(tmp_path: Path) -> None:
    codec = Codec(served.load(gather_model(tmp_path / "gather.onnx"), "lookup", "1", None, 1))

    def decode(data: list[Any]) -> np.ndarray:
        entry = {"name": "indices", "shape": [len(data)], "datatype": "INT64", "data": data}
        body = json.dumps({"inputs": [entry]}).encode()
        return codec.decode(body, None, None).inputs["indices"]

    assert decode([1, 2]).dtype == np.int64
    with pytest.raises(ProtocolError, match="holds floating-point numbers"):
        decode([1.5, 2])
    with pytest.raises(ProtocolError, match="holds booleans"):
        decode([True, False])
    with pytest.raises(ProtocolError, match=r"holds values outside \[-9223372036854775808, "):
        decode([2**64 - 1])


def test_strings_in_json_and_binary(words: served.ServedModel) -> None:
    codec = Codec(words)
    entry = {"name": "words", "shape": [2, 2], "datatype": "BYTES", "data": ["a", "bé", "", "d"]}
    request = codec.decode(orjson.dumps({"inputs": [entry]}), None, None)
    assert request.inputs["words"].tolist() == [["a", "bé"], ["", "d"]]
    encoded = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in ["x", "yz"])
    body, length = binary_request(
        [({"name": "words", "shape": [1, 2], "datatype": "BYTES"}, encoded)]
    )
    assert codec.decode(body, length, None).inputs["words"].tolist() == [["x", "yz"]]
    overlong = struct.pack("<I", 50) + b"x" + struct.pack("<I", 2) + b"yz"
    body, length = binary_request(
        [({"name": "words", "shape": [1, 2], "datatype": "BYTES"}, overlong)]
    )
    with pytest.raises(ProtocolError, match="element 0 of BYTES input 'words' runs past"):
        codec.decode(body, length, None)
    bad = {**entry, "data": ["a", 1, "c", "d"]}
    with pytest.raises(ProtocolError, match="flat list of strings"):
        codec.decode(orjson.dumps({"inputs": [bad]}), None, None)
    outputs = words.run(request.inputs)
    text, header = codec.encode(request, RunOutputs(outputs, stacked=False), 0, 2)
    assert header is None
    assert json.loads(text)["outputs"][0]["data"] == ["a", "bé", "", "d"]


def test_responses_as_json_and_binary(wine: served.ServedModel) -> None:
    codec = Codec(wine)
    rows = wine_rows(2)
    outputs = wine.run({"input": rows})
    request = codec.decode(
        wine_request(
            rows,
            id='quote"d',
            outputs=[
                {"name": "probabilities", "parameters": {"binary_data": True}},
                {"name": "label"},
            ],
        ),
        None,
        None,
    )
    body, length = codec.encode(request, RunOutputs(outputs, stacked=False), 0, 2)
    assert length is not None
    document = json.loads(body[:length])
    assert document["id"] == 'quote"d'
    assert (document["model_name"], document["model_version"]) == ("wine", "3")
    probabilities, label = document["outputs"]
    assert probabilities == {
        "name": "probabilities",
        "datatype": "FP32",
        "shape": [2, 3],
        "parameters": {"binary_data_size": 24},
    }
    np.testing.assert_array_equal(np.frombuffer(body[length:], "<f4").reshape(2, 3), outputs[1])
    assert label == {
        "name": "label",
        "datatype": "INT64",
        "shape": [2],
        "data": outputs[0].tolist(),
    }


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 4), min_size=1, max_size=6),
    dtype=st.sampled_from(["<f4", "<f8", "<i8", "<i4", "|b1", "<f2", "<u1"]),
    width=st.integers(0, 3),
    binary=st.booleans(),
)
def test_rows_cut_from_a_stacked_run_equal_each_request_alone(
    wine: served.ServedModel, counts: list[int], dtype: str, width: int, binary: bool
) -> None:
    """The rows texts of a stacked run are exactly what serializing each slice would give."""
    total = sum(counts)
    generator = np.random.default_rng(total)
    arrays = [
        (generator.random((total, width)) * 100).astype(dtype),
        (generator.random(total) * 100).astype(dtype),
    ]
    codec = Codec(wine)
    options = {"parameters": {"binary_data_output": binary}}
    request = codec.decode(wine_request(wine_rows(1), **options), None, None)
    stacked = RunOutputs(arrays, stacked=True)
    start = 0
    for count in counts:
        end = start + count
        alone = RunOutputs([array[start:end] for array in arrays], stacked=False)
        assert codec.encode(request, stacked, start, end) == codec.encode(request, alone, 0, count)
        start = end


def test_a_model_file_that_is_not_the_registered_one(tmp_path: Path) -> None:
    path = wine_model(tmp_path / "model.onnx")
    with pytest.raises(RuntimeFailure) as failure:
        served.load(path, "wine", "1", "ab" * 32, 1)
    assert failure.value.reason == "DigestMismatch"
    assert "ab" * 32 in failure.value.message
