"""Load one model version: fetch and verify it from the store, check the graph, warm up (blocking).

Only ONNX artifacts written by the trainer load. The store's ``fetch`` verifies the manifest
against the digest from the routing file and every file's sha256 before anything is used: a
local store (a PVC) in place, an ``s3://`` store by downloading once into the pod's cache,
hashing on the way, and renaming into the cache only when every digest matched. ``model.onnx``
is then read through the verified handle (which re-checks its digest), so a file swapped in
between is caught. Every failure is a :class:`LoadError` with a short ``reason`` for the
load-failure metric.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
from typing import Any, Literal

import numpy as np
import orjson

from mlsteward.serving import batching, runtime, signatures
from mlsteward.store import artifacts, stores
from mlsteward.store.errors import StoreError

LoadReason = Literal[
    "digest_mismatch", "artifact_missing", "store_unavailable", "invalid_schema", "invalid_graph"
]
_log = logging.getLogger("mlsteward.serving.models")
_AnyArray = np.ndarray[Any, Any]


class LoadError(Exception):
    def __init__(self, reason: LoadReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclasses.dataclass(frozen=True)
class VersionRef:
    """Which artifact a routing file names for a version."""

    version: str
    digest: str


@dataclasses.dataclass
class LoadedModel:
    """A verified, warmed-up model version ready to score."""

    name: str
    version: str
    digest: str
    signature: signatures.Signature
    runtime: runtime.Runtime
    batcher: batching.Batcher
    reference: dict[str, Any]
    """Per feature: the reference profile's median (numeric) or mode (categorical), for reason codes."""

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnx_onnxv1",
            "inputs": [spec.to_json() for spec in self.runtime.inputs],
            "outputs": [spec.to_json() for spec in self.runtime.outputs],
            "parameters": {"digest": self.digest, "task": self.signature.task},
        }


def open_store(location: str) -> stores.ArtifactStore:
    """The store named by ``--store``; a relative directory is taken from the working directory."""
    if "://" not in location:
        location = str(pathlib.Path(location).resolve())
    return stores.open_store(location)


def _store_reason(error: StoreError) -> LoadReason:
    if error.reason == "DigestMismatch":
        return "digest_mismatch"
    if error.reason in {"ObjectMissing", "BucketMissing"}:
        return "artifact_missing"
    return "store_unavailable"


def load(
    store: stores.ArtifactStore,
    cache_dir: pathlib.Path,
    name: str,
    ref: VersionRef,
    *,
    intra_op_threads: int,
    inter_op_threads: int,
    warmup_rows: int,
    max_batch_size: int,
    max_delay_s: float,
    on_batch: Any = None,
    offload: bool = False,
) -> LoadedModel:
    """Open, verify, load and warm up one version; raises LoadError."""
    try:
        verified = store.fetch(ref.digest, cache_dir)
        schema = orjson.loads(verified.read("schema.json"))
        model_bytes = verified.read("model.onnx")
        profile = orjson.loads(verified.read("profile.json")) if "profile.json" in verified.files else {}
    except artifacts.ArtifactError as error:
        raise LoadError("digest_mismatch", f"artifact {ref.digest} refused: {error}") from error
    except StoreError as error:
        raise LoadError(
            _store_reason(error),
            f"artifact {ref.digest} from {store.location} refused ({error.reason}): {error}",
        ) from error
    except OSError as error:  # the cache cannot be written (disk full, read-only)
        raise LoadError(
            "store_unavailable", f"artifact {ref.digest}: cannot cache it in {cache_dir}: {error}"
        ) from error
    except orjson.JSONDecodeError as error:
        raise LoadError(
            "invalid_schema", f"artifact {ref.digest}: a JSON file does not parse: {error}"
        ) from error
    try:
        signature = signatures.from_schema(schema)
    except signatures.SignatureError as error:
        raise LoadError("invalid_schema", f"artifact {ref.digest}: {error}") from error
    try:
        session = runtime.Runtime(
            model_bytes, signature, intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads
        )
    except runtime.GraphMismatchError as error:
        raise LoadError("invalid_graph", f"artifact {ref.digest}: {error}") from error
    reference = reference_values(signature, profile)
    try:
        for rows in sorted({1, warmup_rows, max_batch_size}):
            session.run(reference_batch(signature, reference, rows))
    except Exception as error:  # ORT's own errors: the graph cannot score the reference row
        raise LoadError(
            "invalid_graph", f"artifact {ref.digest}: warm-up inference failed: {error}"
        ) from error
    batcher = batching.Batcher(
        session.run_feeds,
        max_batch_size=max_batch_size,
        max_delay_s=max_delay_s,
        on_batch=on_batch,
        offload=offload,
    )
    _log.info("loaded model %s version %s from artifact %s (warmed up)", name, ref.version, ref.digest)
    return LoadedModel(name, ref.version, ref.digest, signature, session, batcher, reference)


def reference_values(signature: signatures.Signature, profile: Any) -> dict[str, Any]:
    """Median (numeric, from the profile histogram) or mode (categorical) per feature; 0.0 or "" if none."""
    features = profile.get("features", {}) if isinstance(profile, dict) else {}
    values: dict[str, Any] = {}
    for feature in signature.features:
        summary = features.get(feature.name) if isinstance(features, dict) else None
        if feature.kind == "numeric":
            values[feature.name] = _median(summary)
        else:
            categories = summary.get("categories") if isinstance(summary, dict) else None
            values[feature.name] = str(categories[0]) if isinstance(categories, list) and categories else ""
    return values


def reference_batch(
    signature: signatures.Signature, reference: dict[str, Any], rows: int
) -> dict[str, _AnyArray]:
    columns: dict[str, _AnyArray] = {}
    for feature in signature.features:
        if feature.kind == "numeric":
            columns[feature.name] = np.full((rows, 1), reference[feature.name], dtype=np.float32)
        else:
            column = np.empty((rows, 1), dtype=object)
            column[:, 0] = reference[feature.name]
            columns[feature.name] = column
    return columns


def _median(summary: Any) -> float:
    """Interpolated median from the profile bins (contracts §2: counts = [below, bins, above, missing])."""
    if not isinstance(summary, dict):
        return 0.0
    edges, counts = summary.get("edges"), summary.get("counts")
    if (
        not isinstance(edges, list)
        or not isinstance(counts, list)
        or len(counts) != len(edges) + 2
        or len(edges) < 2
    ):
        mean = summary.get("mean")
        return float(mean) if isinstance(mean, int | float) and math.isfinite(mean) else 0.0
    bins = counts[1 : len(edges)]
    total = sum(bins)
    if total <= 0:
        return float(edges[0])
    half, seen = total / 2, 0.0
    for position, count in enumerate(bins):
        if count > 0 and seen + count >= half:
            low, high = float(edges[position]), float(edges[position + 1])
            return float(low + (high - low) * (half - seen) / count)
        seen += count
    return float(edges[-1])
