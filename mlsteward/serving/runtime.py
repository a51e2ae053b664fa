"""ONNX Runtime behind one small class: build a session from verified bytes, check its graph, run it.

The graph must match contracts §1 and the artifact's schema: one input per feature, named and
ordered as the features, ``[None, 1]``, ``tensor(float)`` for numerics and ``tensor(string)`` for
categoricals; outputs ``label`` + ``probabilities`` (classification) or ``variable`` (regression).
A graph that does not is refused at load time, so requests validated by the protocol module
always fit it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
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
        try:
            self._session = ort.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ORT raises its own untyped errors for malformed graphs
            raise GraphMismatchError(f"model.onnx does not load in ONNX Runtime: {error}") from error
        self.signature = signature
        self.inputs = self._check_inputs(signature)
        self.outputs = self._check_outputs(signature)
        self.output_names = tuple(spec.name for spec in self.outputs)
        self.datatypes = {spec.name: spec.datatype for spec in self.outputs}

    def run(self, columns: dict[str, _AnyArray]) -> dict[str, _AnyArray]:
        results = self._session.run(list(self.output_names), columns)
        return dict(zip(self.output_names, results, strict=True))

    def _check_inputs(self, signature: signatures.Signature) -> tuple[TensorSpec, ...]:
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
