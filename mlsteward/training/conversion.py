"""ONNX conversion (skl2onnx) and the parity proof against the fitted pipeline.

The graph has one input per feature, named as the column, ``[None, 1]``, float for numerics and
string for categoricals; classifiers output ``label`` and ``probabilities`` (no ZipMap),
regressors ``variable`` (contracts §1). Conversion is deterministic: the same pipeline gives the
same bytes. Parity is judged on rates (label agreement, share of rows beyond epsilon), not on
bit-exactness, since ONNX computes in float32 where scikit-learn uses float64.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from mlsteward.api import model as api_model
from mlsteward.training import errors

# Opsets every onnxruntime >= 1.20 runs (the serving extra's lower bound).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
# Holdout rows that scikit-learn scores again for the parity check (all of them below this).
# ONNX Runtime scores the whole holdout anyway (metrics, fairness, prediction profile); only the
# second scoring is sampled. The bound this gives is in docs/training.md ("Parity sample").
PARITY_SAMPLE_ROWS = 50_000


@dataclasses.dataclass(frozen=True)
class Predictions:
    """What a model produced for a batch: labels (classification) and a score matrix or vector."""

    labels: np.ndarray[Any, Any] | None
    values: np.ndarray[Any, Any]
    """Class probabilities ``[n, n_classes]`` (classification) or predictions ``[n]`` (regression)."""

    def take(self, rows: np.ndarray[Any, Any]) -> Predictions:
        """The predictions for the given row positions."""
        return Predictions(
            labels=None if self.labels is None else self.labels[rows], values=self.values[rows]
        )


def to_onnx(pipeline: Any, features: list[str], categorical: list[str], task: str) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    categorical_set = set(categorical)
    initial_types = [
        (name, StringTensorType([None, 1]) if name in categorical_set else FloatTensorType([None, 1]))
        for name in features
    ]
    options: dict[Any, Any] = {}
    if task == "classification":
        options[id(pipeline.steps[-1][1])] = {"zipmap": False}
    try:
        onnx_model = convert_sklearn(
            pipeline, initial_types=initial_types, options=options, target_opset=TARGET_OPSET
        )
    except Exception as error:  # skl2onnx raises many unrelated types
        raise errors.InternalError(f"ONNX conversion failed: {type(error).__name__}: {error}") from error
    outputs = [o.name for o in onnx_model.graph.output]
    expected = ["label", "probabilities"] if task == "classification" else ["variable"]
    if outputs != expected:
        raise errors.InternalError(f"ONNX graph outputs are {outputs}, expected {expected}")
    # Two things in skl2onnx's output vary between processes: the graph's name (a random UUID)
    # and the order of opset_import (built from a set, so it follows PYTHONHASHSEED).
    onnx_model.graph.name = "mlsteward"
    opsets = sorted({(o.domain, o.version) for o in onnx_model.opset_import})
    del onnx_model.opset_import[:]
    for domain, version in opsets:
        onnx_model.opset_import.add(domain=domain, version=version)
    data: bytes = onnx_model.SerializeToString()
    return data


def input_names(model_bytes: bytes) -> list[str]:
    import onnx

    return [i.name for i in onnx.load_from_string(model_bytes).graph.input]


def feeds(
    frame: pd.DataFrame, features: list[str], categorical: list[str]
) -> dict[str, np.ndarray[Any, Any]]:
    """ONNX Runtime inputs for a frame of validated features (see data.validate)."""
    categorical_set = set(categorical)
    return {
        name: (
            frame[name].to_numpy(dtype=object).reshape(-1, 1)
            if name in categorical_set
            else frame[name].to_numpy(dtype=np.float32).reshape(-1, 1)
        )
        for name in features
    }


def predict_onnx(model_bytes: bytes, inputs: dict[str, np.ndarray[Any, Any]], task: str) -> Predictions:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # Idle intra-op threads sleep instead of spinning: spinning doubled the CPU time of scoring
    # a 200k-row holdout with HistGradientBoosting on a busy 2-core machine, for no gain in wall time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    if task == "classification":
        labels, probabilities = session.run(["label", "probabilities"], inputs)
        return Predictions(
            labels=np.asarray(labels).ravel(), values=np.asarray(probabilities, dtype=np.float64)
        )
    (variable,) = session.run(["variable"], inputs)
    return Predictions(labels=None, values=np.asarray(variable, dtype=np.float64).ravel())


def parity_rows(
    target: np.ndarray[Any, Any], task: str, seed: int, limit: int = PARITY_SAMPLE_ROWS
) -> np.ndarray[Any, Any]:
    """Holdout row positions for the parity check: every row up to ``limit``, else a seeded sample
    of ``limit`` rows, stratified by class for classification; ascending."""
    rows = np.arange(len(target))
    if len(rows) <= limit:
        return rows
    from sklearn.model_selection import train_test_split

    stratify = target if task == "classification" else None
    try:
        chosen, _ = train_test_split(rows, train_size=limit, random_state=seed, stratify=stratify)
    except ValueError:  # a class too rare to stratify on: a plain seeded sample
        chosen, _ = train_test_split(rows, train_size=limit, random_state=seed)
    return np.sort(chosen)


def predict_sklearn(pipeline: Any, frame: pd.DataFrame, task: str) -> Predictions:
    if task == "classification":
        probabilities = np.asarray(pipeline.predict_proba(frame), dtype=np.float64)
        classes = pipeline.classes_
        return Predictions(labels=classes[np.argmax(probabilities, axis=1)], values=probabilities)
    return Predictions(labels=None, values=np.asarray(pipeline.predict(frame), dtype=np.float64).ravel())


def parity(
    reference: Predictions, candidate: Predictions, limits: api_model.ParityLimits, task: str
) -> dict[str, Any]:
    """Compare ONNX (candidate) with scikit-learn (reference) on the same rows; report and judge."""
    rows = len(reference.values)
    difference = np.abs(reference.values - candidate.values)
    if task == "regression":
        # float32 keeps ~7 significant digits: judge large predictions relative to their size.
        difference = difference / np.maximum(1.0, np.abs(reference.values))
    per_row = difference.max(axis=1) if difference.ndim == 2 else difference
    report: dict[str, Any] = {
        "rows": rows,
        "epsilon": limits.epsilon,
        "share_above_epsilon": float(np.mean(per_row > limits.epsilon)) if rows else 0.0,
        "max_abs_difference": float(per_row.max()) if rows else 0.0,
    }
    breaches: list[str] = []
    if task == "classification":
        assert reference.labels is not None and candidate.labels is not None
        expected, actual = reference.labels, candidate.labels
        if expected.dtype.kind not in "iub" or actual.dtype.kind not in "iub":
            expected, actual = expected.astype(str), actual.astype(str)
        agreement = float(np.mean(expected == actual)) if rows else 1.0
        report["label_agreement"] = agreement
        if agreement < limits.min_label_agreement:
            breaches.append(
                f"label agreement {agreement:.6f} < minLabelAgreement {limits.min_label_agreement}"
            )
    if report["share_above_epsilon"] > limits.max_share_above_epsilon:
        breaches.append(
            f"share of rows differing by more than {limits.epsilon} is {report['share_above_epsilon']:.6f} "
            f"> maxShareAboveEpsilon {limits.max_share_above_epsilon}"
        )
    if report["max_abs_difference"] > limits.max_abs_difference:
        breaches.append(
            f"max difference {report['max_abs_difference']:.6g} > "
            f"maxAbsDifference {limits.max_abs_difference}"
        )
    report["passed"] = not breaches
    report["breaches"] = breaches
    return report
