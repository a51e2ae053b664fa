"""Reproduce and verify: retrain a version from its recorded lineage and compare with its artifact.

The spec comes from the artifact's ``spec.json`` (the fields the spec hash covers), checked
against the lineage's spec hash; the dataset is read again from the recorded URI with the
recorded digest pinned, so a dataset that changed is refused before any parsing. The retrained
model is then compared with the recorded one:

- identical ONNX bytes: reproduced exactly;
- different bytes while a library version differs: the holdout metrics and the two models'
  predictions on the same holdout rows must agree within stated tolerances (``equivalent``);
- anything else: ``differs``, with the figures.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import tempfile
from typing import Any, Literal

import numpy as np

from mlsteward.api import model as api_model
from mlsteward.evidence import sources
from mlsteward.store import artifacts
from mlsteward.training import conversion, data, errors, lineage, pipeline, runner, settings, specs

Verdict = Literal["identical", "equivalent", "differs", "not-reproducible"]
# Exit codes of `mlsteward verify` (docs/evidence.md).
EXIT_CODES: dict[Verdict, int] = {"identical": 0, "equivalent": 0, "differs": 1, "not-reproducible": 3}
EXIT_BAD_INPUT = 2


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far a retrained model may be from the recorded one when a library version differs."""

    metric: float = 0.01
    """Largest absolute difference of any holdout metric."""
    label_disagreement: float = 0.01
    """Largest share of holdout rows whose predicted label differs (classification)."""
    score: float = 0.05
    """Largest absolute difference of a row's score (probability, or relative for regression)."""


def _spec_of(
    artifact: Any, recorded: dict[str, Any], override: api_model.ModelSpec | None
) -> api_model.ModelSpec:
    if override is not None:
        spec = override
    elif "spec.json" in artifact.files:
        try:
            spec = specs.parse_spec(artifact.read("spec.json").decode(), "the artifact's spec.json")
        except errors.TrainingError as error:
            raise sources.EvidenceError(error.message) from error
    else:
        raise sources.EvidenceError(
            f"artifact sha256:{artifact.digest} has no spec.json (trained before it was recorded): "
            "pass the Model spec it was trained from with --spec FILE"
        )
    if specs.spec_hash(spec) != recorded["spec_hash"]:
        raise sources.EvidenceError(
            f"the spec's hash {specs.spec_hash(spec)} is not the recorded spec hash {recorded['spec_hash']}: "
            "this is not the spec the version was trained from"
        )
    return spec


def _version_changes(recorded: dict[str, str], current: dict[str, str]) -> dict[str, dict[str, str | None]]:
    names = sorted(set(recorded) | set(current))
    return {
        n: {"recorded": recorded.get(n), "now": current.get(n)}
        for n in names
        if recorded.get(n) != current.get(n)
    }


def verify(
    artifact: artifacts.VerifiedArtifact,
    *,
    spec_override: api_model.ModelSpec | None = None,
    tolerance: Tolerance | None = None,
    proxy_sample_rows: int = 5_000,
) -> dict[str, Any]:
    """Retrain and compare; return the report (``verdict`` and the figures behind it)."""
    tolerance = tolerance or Tolerance()
    recorded = sources.read_json(artifact, "lineage.json")
    spec = _spec_of(artifact, recorded, spec_override)
    dataset = recorded["dataset"]
    report: dict[str, Any] = {
        "artifact": artifact.digest,
        "dataset": {"uri": dataset["uri"], "sha256": dataset["sha256"]},
        "spec_hash": recorded["spec_hash"],
        "tolerance": dataclasses.asdict(tolerance),
        "versions_differing": _version_changes(recorded.get("versions") or {}, lineage.versions()),
    }
    try:
        # Hashed while read, compared before any parsing: a changed dataset costs one read, no fit.
        data.fetch(dataset["uri"], spec.dataset.format, dataset["sha256"])
    except errors.DigestMismatchError as error:
        return {
            **report,
            **_not_reproducible({"reason": error.reason, "dataset_sha256": error.actual_sha256}, dataset),
        }
    except errors.TrainingError as error:
        return {**report, **_not_reproducible({"reason": error.reason, "message": error.message}, dataset)}
    with tempfile.TemporaryDirectory(prefix="mlsteward-verify-") as scratch:
        config = settings.TrainSettings(
            store=str(pathlib.Path(scratch) / "store"),
            spec_text=json.dumps(spec.model_dump(mode="json", by_alias=True)),
            name=(recorded.get("model") or {}).get("name"),
            namespace=(recorded.get("model") or {}).get("namespace"),
            image_digest=recorded.get("image_digest"),
            proxy_sample_rows=proxy_sample_rows,
        )
        outcome, _ = runner.run(config)
        if outcome.get("dataset_sha256") not in (None, dataset["sha256"]):
            outcome = {**outcome, "reason": "DigestMismatch"}  # the file changed while we trained
        if outcome["reason"] == "DigestMismatch" or not outcome.get("artifact"):
            return {**report, **_not_reproducible(outcome, dataset)}
        rebuilt = artifacts.open_artifact_in_store(
            pathlib.Path(scratch) / "store", outcome["artifact"]["digest"]
        )
        old_model, new_model = artifact.read("model.onnx"), rebuilt.read("model.onnx")
        report["rebuilt_artifact"] = rebuilt.digest
        report["model_onnx_sha256"] = {
            "recorded": recorded["model_onnx_sha256"],
            "rebuilt": artifacts.sha256_bytes(new_model),
        }
        report["artifact_identical"] = rebuilt.digest == artifact.digest
        if old_model == new_model and artifacts.sha256_bytes(old_model) == recorded["model_onnx_sha256"]:
            report.update(verdict="identical", message="retrained from the lineage: identical ONNX bytes")
            return report
        old_metrics = sources.read_json(artifact, "metrics.json").get("holdout") or {}
        new_metrics = sources.read_json(rebuilt, "metrics.json").get("holdout") or {}
        report["metrics"] = {
            name: {
                "recorded": old_metrics.get(name),
                "rebuilt": new_metrics.get(name),
                "difference": _difference(old_metrics.get(name), new_metrics.get(name)),
            }
            for name in sorted(set(old_metrics) | set(new_metrics))
        }
        report["predictions"] = _compare_predictions(spec, dataset["sha256"], old_model, new_model)
    report.update(_judge(report, tolerance))
    return report


def _difference(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)):
        return None
    return abs(float(a) - float(b))


def _not_reproducible(outcome: dict[str, Any], dataset: dict[str, Any]) -> dict[str, Any]:
    reason = outcome.get("reason")
    if reason == "DigestMismatch":
        message = (
            f"not reproducible: the dataset at {dataset['uri']} now has sha256 "
            f"{outcome.get('dataset_sha256')}, but this version was trained on sha256 {dataset['sha256']}"
        )
    else:
        message = f"not reproducible: retraining failed ({reason}): {outcome.get('message')}"
    return {"verdict": "not-reproducible", "reason": reason, "message": message}


def _compare_predictions(
    spec: api_model.ModelSpec, sha256: str, old_model: bytes, new_model: bytes
) -> dict[str, Any]:
    """Both models scored on the same holdout rows (the recorded seed's split of the same data)."""
    dataset = spec.dataset
    raw = data.fetch(dataset.uri, dataset.format, sha256)
    frame = data.validate(data.parse(raw, [dataset.target, *dataset.features, *dataset.sensitive]), spec)
    split = pipeline.split(
        frame[dataset.target].to_numpy(), spec.task, spec.split.test_fraction, spec.estimator.seed
    )
    test = frame.iloc[split.test].reset_index(drop=True)
    inputs = conversion.feeds(test, list(dataset.features), list(dataset.categorical))
    old = conversion.predict_onnx(old_model, inputs, spec.task)
    new = conversion.predict_onnx(new_model, inputs, spec.task)
    result: dict[str, Any] = {"rows": len(test)}
    if spec.task == "classification":
        assert old.labels is not None and new.labels is not None
        result["label_disagreement"] = float(np.mean(old.labels.astype(str) != new.labels.astype(str)))
        result["max_score_difference"] = float(np.max(np.abs(old.values - new.values))) if len(test) else 0.0
    else:
        scale = np.maximum(1.0, np.abs(old.values))
        result["label_disagreement"] = None
        result["max_score_difference"] = (
            float(np.max(np.abs(old.values - new.values) / scale)) if len(test) else 0.0
        )
    return result


def _judge(report: dict[str, Any], tolerance: Tolerance) -> dict[str, Any]:
    breaches = [
        f"holdout {name} differs by {entry['difference']:.6g} (tolerance {tolerance.metric})"
        for name, entry in report["metrics"].items()
        if entry["difference"] is not None and entry["difference"] > tolerance.metric
    ]
    predictions = report["predictions"]
    disagreement = predictions.get("label_disagreement")
    if disagreement is not None and disagreement > tolerance.label_disagreement:
        breaches.append(
            f"{disagreement:.4%} of holdout labels differ (tolerance {tolerance.label_disagreement:.4%})"
        )
    if predictions["max_score_difference"] > tolerance.score:
        breaches.append(
            f"a holdout score differs by {predictions['max_score_difference']:.6g} "
            f"(tolerance {tolerance.score})"
        )
    changed = report["versions_differing"]
    if not changed:
        breaches.insert(0, "the ONNX bytes differ although every recorded library version is the same")
    if breaches:
        return {"verdict": "differs", "message": "differs: " + "; ".join(breaches)}
    listed = ", ".join(f"{n} {v['recorded']} -> {v['now']}" for n, v in changed.items())
    return {
        "verdict": "equivalent",
        "message": f"the ONNX bytes differ, library versions differ ({listed}); holdout metrics and "
        "predictions agree within the tolerances",
    }
