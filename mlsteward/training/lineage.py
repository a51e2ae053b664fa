"""The lineage record: where the artifact came from, precisely enough to rebuild it."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

import mlsteward

_LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas", "pyarrow", "protobuf")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "mlsteward": mlsteward.__version__}
    for name in _LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "unknown"
    return found


def build(
    *,
    name: str | None,
    namespace: str | None,
    dataset: dict[str, Any],
    spec_hash: str,
    seed: int,
    split: dict[str, Any],
    estimator: dict[str, Any],
    policy_exceptions: list[dict[str, str]],
    image_digest: str | None,
    model_onnx_sha256: str,
    feature_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "schema": "mlsteward.io/lineage/v1",
        "model": {"name": name, "namespace": namespace},
        "dataset": dataset,
        "spec_hash": spec_hash,
        "seed": seed,
        "split": split,
        "estimator": estimator,
        "policy_exceptions": policy_exceptions,
        "versions": versions(),
        "image_digest": image_digest,
        "model_onnx_sha256": model_onnx_sha256,
        "feature_schema": feature_schema,
    }
