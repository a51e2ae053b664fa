"""The runtime feeds numeric models one [N, F] matrix when the graph starts by concatenating its inputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from mlsteward.serving import runtime, signatures

NUMERIC = signatures.from_schema(
    {"task": "regression", "features": [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}]}
)


def _graph(concat_inputs: list[str], axis: int = 1, extra_reader: bool = False) -> bytes:
    """a, b [N, 1] -> Concat -> Imputer (NaN -> 0.5) -> LinearRegressor -> variable [N, 1]."""
    nodes = [
        helper.make_node("Concat", concat_inputs, ["merged"], axis=axis),
        helper.make_node(
            "Imputer",
            ["merged"],
            ["imputed"],
            domain="ai.onnx.ml",
            imputed_value_floats=[0.5, 0.5],
            replaced_value_float=float("nan"),
        ),
        helper.make_node(
            "LinearRegressor",
            ["imputed"],
            ["linear"],
            domain="ai.onnx.ml",
            coefficients=[2.0, -3.0],
            intercepts=[1.0],
        ),
    ]
    if extra_reader:  # the graph reads an input again after the Concat: it cannot take one matrix
        nodes.append(helper.make_node("Add", ["linear", "a"], ["variable"]))
    else:
        nodes.append(helper.make_node("Identity", ["linear"], ["variable"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]) for name in ("a", "b")],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 16), helper.make_opsetid("ai.onnx.ml", 1)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _columns(rows: int) -> dict[str, np.ndarray]:
    values = np.random.default_rng(3).normal(size=(rows, 2)).astype(np.float32)
    values[0, 1] = np.nan  # a missing value goes through the imputer either way
    return {"a": values[:, :1].copy(), "b": values[:, 1:].copy()}


def test_a_graph_that_concatenates_its_inputs_first_is_fed_one_matrix_with_identical_results() -> None:
    model = _graph(["a", "b"])
    rewritten = runtime.Runtime(model, NUMERIC, intra_op_threads=1, inter_op_threads=1)
    assert rewritten.matrix_input == "merged"
    assert [spec.name for spec in rewritten.inputs] == ["a", "b"]  # the metadata still lists the features
    original = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    columns = _columns(5)
    expected = original.run(["variable"], columns)[0]
    np.testing.assert_array_equal(rewritten.run(columns)["variable"], expected)
    matrix = np.hstack([columns["a"], columns["b"]])
    feeds = rewritten.feeds(columns, matrix)
    assert list(feeds) == ["merged"] and feeds["merged"] is matrix
    np.testing.assert_array_equal(rewritten.run_feeds(feeds)["variable"], expected)


def test_graphs_that_use_their_inputs_otherwise_keep_one_input_per_feature() -> None:
    for model in (_graph(["b", "a"]), _graph(["a", "b"], extra_reader=True)):
        kept = runtime.Runtime(model, NUMERIC, intra_op_threads=1, inter_op_threads=1)
        assert kept.matrix_input is None
        columns = _columns(3)
        assert kept.feeds(columns) is columns
        original = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        np.testing.assert_array_equal(kept.run(columns)["variable"], original.run(["variable"], columns)[0])
