"""ONNX models for the serving tests: real wine classifiers, and one that fails at inference."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_wine
from sklearn.tree import DecisionTreeClassifier

WINE = load_wine()
ROWS = WINE.data.astype(np.float32)


def classifier(depth: int) -> bytes:
    """A wine classifier as ONNX (input `input`; label and probabilities, no zipmap)."""
    model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(ROWS, WINE.target)
    exported = to_onnx(
        model,
        initial_types=[("input", FloatTensorType([None, ROWS.shape[1]]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    return bytes(exported.SerializeToString())


def failing_model() -> bytes:
    """A model with the wine signature that loads and warms up (on zeros) but fails on real
    rows: it gathers from a 3-entry table at an index taken from the first feature."""
    table = helper.make_tensor("table", TensorProto.FLOAT, [3, 3], [1.0] * 9)
    nodes = [
        helper.make_node("Slice", ["input", "zero", "one", "one"], ["first"]),
        helper.make_node("Squeeze", ["first", "one"], ["squeezed"]),
        helper.make_node("Cast", ["squeezed"], ["label"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "label"], ["probabilities"], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "failing",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 13])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3]),
        ],
        initializer=[
            table,
            helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
