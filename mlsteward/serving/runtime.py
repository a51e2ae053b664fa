"""ONNX Runtime behind one small class: build a session from verified bytes, check its graph, run it.

The graph must match contracts §1 and the artifact's schema: one input per feature, named and
ordered as the features, ``[None, 1]``, ``tensor(float)`` for numerics and ``tensor(string)`` for
categoricals; outputs ``label`` + ``probabilities`` (classification) or ``variable`` (regression).
A graph that does not is refused at load time, so requests validated by the protocol module
always fit it.

One input per feature costs ONNX Runtime a fixed overhead per input and call (~1.3 µs each here:
two thirds of a single-row call for 20 features). When every feature is numeric and the graph
starts by concatenating all its inputs in order (the trainer's numeric pipelines do), the session
is built from the same graph without that Concat, fed one ``[N, F]`` float32 matrix: the same
arithmetic on the same values, and the matrix is what a one-tensor request already holds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from mlsteward.serving import signatures

_ORT_TO_V2 = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(string)": "BYTES",
    "tensor(bool)": "BOOL",
}
_EXPECTED_INPUT = {"numeric": "tensor(float)", "categorical": "tensor(string)"}
_AnyArray = np.ndarray[Any, Any]


class GraphMismatchError(ValueError):
    """The ONNX graph does not have the inputs or outputs that contracts §1 and schema.json promise."""


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One tensor as the v2 metadata endpoint describes it (-1 for a variable dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class Runtime:
    """An ONNX Runtime session for one model.

    Usage::

        runtime = Runtime(model_bytes, signature, intra_op_threads=1, inter_op_threads=1)
        outputs = runtime.run({"income": np.array([[1.0]], np.float32), ...})  # {"label": ..., ...}
    """

    def __init__(
        self, model: bytes, signature: signatures.Signature, *, intra_op_threads: int, inter_op_threads: int
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if intra_op_threads > 1:
            # Spinning threads burn the CPU the event loop needs between batches.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._options = options
        self._session = self._open(model)
        self.signature = signature
        self.inputs = self._check_inputs(signature)
        self.outputs = self._check_outputs(signature)
        self.output_names = tuple(spec.name for spec in self.outputs)
        self._wanted = list(self.output_names)
        self.datatypes = {spec.name: spec.datatype for spec in self.outputs}
        self.matrix_input: str | None = None
        """The one ``[N, F]`` input of the session when it was built without the inputs' Concat."""
        if signature.numeric_only:
            rewritten = _without_input_concat(model, signature.names)
            if rewritten is not None:
                self._session, self.matrix_input = self._open(rewritten[0]), rewritten[1]

    def _open(self, model: bytes) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(model, sess_options=self._options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own untyped errors for malformed graphs
            raise GraphMismatchError(f"model.onnx does not load in ONNX Runtime: {error}") from error

    def feeds(self, columns: dict[str, _AnyArray], matrix: _AnyArray | None = None) -> dict[str, _AnyArray]:
        """What :meth:`run_feeds` takes for these per-feature ``[N, 1]`` columns (or their ``[N, F]``
        float32 ``matrix``, when the request had one)."""
        if self.matrix_input is None:
            return columns
        if matrix is None:
            matrix = np.hstack([columns[name] for name in self.signature.names])
        return {self.matrix_input: matrix}

    def run_feeds(self, feeds: dict[str, _AnyArray]) -> dict[str, _AnyArray]:
        results = self._session.run(self._wanted, feeds)
        return dict(zip(self.output_names, results, strict=True))

    def run(self, columns: dict[str, _AnyArray]) -> dict[str, _AnyArray]:
        return self.run_feeds(self.feeds(columns))

    def _check_inputs(self, signature: signatures.Signature) -> tuple[TensorSpec, ...]:
        # Checked on the session of the artifact as written (contracts §1), before any rewrite.
        graph_inputs = self._session.get_inputs()
        names = [node.name for node in graph_inputs]
        if names != list(signature.names):
            raise GraphMismatchError(
                f"model.onnx inputs {names} differ from schema.json features {list(signature.names)} "
                "(contracts §1: one input per feature, in feature order)"
            )
        specs = []
        for node, feature in zip(graph_inputs, signature.features, strict=True):
            if node.type != _EXPECTED_INPUT[feature.kind]:
                raise GraphMismatchError(
                    f"model.onnx input {node.name!r} is {node.type}; a {feature.kind} feature needs "
                    f"{_EXPECTED_INPUT[feature.kind]}"
                )
            if len(node.shape) != 2 or node.shape[1] != 1:
                raise GraphMismatchError(
                    f"model.onnx input {node.name!r} has shape {node.shape}; expected [None, 1]"
                )
            specs.append(TensorSpec(node.name, _ORT_TO_V2[node.type], (-1, 1)))
        return tuple(specs)

    def _check_outputs(self, signature: signatures.Signature) -> tuple[TensorSpec, ...]:
        by_name = {node.name: node for node in self._session.get_outputs()}
        wanted = ("label", "probabilities") if signature.task == "classification" else ("variable",)
        specs = []
        for name in wanted:
            node = by_name.get(name)
            if node is None:
                raise GraphMismatchError(
                    f"model.onnx has no output {name!r} (outputs: {', '.join(by_name)}); a {signature.task} "
                    f"model needs {', '.join(wanted)}"
                )
            if node.type not in _ORT_TO_V2:
                raise GraphMismatchError(f"model.onnx output {name!r} has unsupported type {node.type}")
            shape = tuple(d if isinstance(d, int) else -1 for d in node.shape)
            specs.append(TensorSpec(name, _ORT_TO_V2[node.type], shape))
        return tuple(specs)


def _without_input_concat(model: bytes, names: tuple[str, ...]) -> tuple[bytes, str] | None:
    """The graph fed one ``[N, F]`` float32 input instead of its F ``[N, 1]`` inputs, when its only
    use of them is one ``Concat(axis=1)`` of all of them in order; else None (the graph is kept)."""
    proto = onnx.load_from_string(model)
    graph = proto.graph
    if [node.name for node in graph.input] != list(names):
        return None
    readers = [node for node in graph.node if set(node.input) & set(names)]
    outputs = {output.name for output in graph.output}
    if len(readers) != 1 or outputs & set(names):
        return None
    concat = readers[0]
    axis = next((onnx.helper.get_attribute_value(a) for a in concat.attribute if a.name == "axis"), None)
    if concat.op_type != "Concat" or concat.domain not in ("", "ai.onnx") or axis not in (1, -1):
        return None
    if list(concat.input) != list(names) or len(concat.output) != 1:
        return None
    matrix = concat.output[0]
    graph.node.remove(concat)
    del graph.input[:]
    graph.input.append(onnx.helper.make_tensor_value_info(matrix, onnx.TensorProto.FLOAT, [None, len(names)]))
    return proto.SerializeToString(), matrix
