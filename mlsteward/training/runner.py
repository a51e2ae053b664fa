"""The training run, stage by stage: spec → data → policy → fit → ONNX → parity → reports → artifact.

Each stage lives in its own module; this one only orders them, times them (to stderr), and
decides the outcome. Nothing reaches the artifact location unless every stage before writing
succeeded; the write itself is atomic (``write_artifact``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from mlsteward.api import model as api_model
from mlsteward.store import artifacts, stores
from mlsteward.store.errors import StoreError
from mlsteward.training import (
    card,
    champion,
    conversion,
    data,
    errors,
    fairness,
    intervals,
    lineage,
    metrics,
    outcome,
    pipeline,
    policy,
    profiles,
    proxies,
    schemas,
    settings,
    specs,
)

log = logging.getLogger("mlsteward.training")


@dataclasses.dataclass
class _Context:
    """What is known so far, so a failure can still report the digest and spec hash."""

    dataset_sha256: str | None = None
    spec_hash: str | None = None


@contextmanager
def _stage(name: str) -> Iterator[None]:
    started, cpu = time.perf_counter(), time.process_time()
    yield
    log.info(
        "stage %s took %.3f s (%.3f CPU s)", name, time.perf_counter() - started, time.process_time() - cpu
    )


def run(config: settings.TrainSettings) -> tuple[dict[str, Any], int]:
    """Train once; return the outcome object and the exit code. Never raises."""
    context = _Context()
    try:
        document = _train(config, context)
    except errors.TrainingError as error:
        log.error("training failed (%s): %s", error.reason, error.message)
        if isinstance(error, errors.DigestMismatchError):
            context.dataset_sha256 = error.actual_sha256
        document = outcome.build(
            reason=error.reason,
            message=error.message,
            dataset_sha256=context.dataset_sha256,
            spec_hash=context.spec_hash,
        )
        return document, error.exit_code
    except Exception as error:
        log.exception("training failed with an unexpected error")
        document = outcome.build(
            reason="InternalError",
            message=f"{type(error).__name__}: {error}",
            dataset_sha256=context.dataset_sha256,
            spec_hash=context.spec_hash,
        )
        return document, errors.EXIT_FAILED
    return document, errors.EXIT_OK


def _train(config: settings.TrainSettings, context: _Context) -> dict[str, Any]:
    with _stage("spec"):
        spec = specs.parse_spec(specs.read_spec_text(config.spec_path, config.spec_text))
        context.spec_hash = specs.spec_hash(spec)
        dataset_spec = spec.dataset
        features, categorical = list(dataset_spec.features), list(dataset_spec.categorical)
        policy.enforce(features, spec, "the spec's features")
        estimator = pipeline.build_estimator(spec.estimator)
    with _stage("read"):
        raw = data.fetch(dataset_spec.uri, dataset_spec.format, dataset_spec.sha256)
        context.dataset_sha256 = raw.sha256
        columns = [dataset_spec.target, *features, *dataset_spec.sensitive]
        declared = schemas.resolved(spec)
        extra = [c.name for c in declared.columns or []] if declared is not None else []
        parsed = data.parse(raw, list(dict.fromkeys([*columns, *extra])))
        del raw
        schemas.check(parsed, spec)
        frame = data.validate(parsed, spec)
        del parsed
    seed = spec.estimator.seed
    target = frame[dataset_spec.target].to_numpy()
    with _stage("split"):
        split = pipeline.split(target, spec.task, spec.split.test_fraction, seed)
        train, test = (
            frame.iloc[split.train].reset_index(drop=True),
            frame.iloc[split.test].reset_index(drop=True),
        )
    sensitive_present = [c for c in dataset_spec.sensitive if c in frame.columns]
    # Sequential on purpose: a side thread for the proxies and profile made a 1M-row linear fit
    # 2x slower here (both threads contend for OpenBLAS's single thread pool).
    proxy_reports = _proxy_reports(frame, spec, sensitive_present, config.proxy_sample_rows)
    with _stage("feature profile"):
        feature_profile = profiles.build_features(train, features, categorical)
    with _stage("fit"):
        model = pipeline.build_pipeline(estimator, features, categorical)
        pipeline.fit(model, train[features], train[dataset_spec.target].to_numpy())
    policy.enforce([str(c) for c in model.feature_names_in_], spec, "the fitted pipeline's inputs")
    with _stage("convert"):
        model_bytes = conversion.to_onnx(model, features, categorical, spec.task)
        graph_inputs = conversion.input_names(model_bytes)
        policy.enforce(graph_inputs, spec, "the ONNX graph's inputs")
        if graph_inputs != features:
            raise errors.InternalError(f"ONNX inputs {graph_inputs} differ from the features {features}")
    with _stage("parity"):
        served = conversion.predict_onnx(
            model_bytes, conversion.feeds(test, features, categorical), spec.task
        )
        # scikit-learn scores a seeded sample of the holdout again (docs/training.md, "Parity").
        checked = conversion.parity_rows(test[dataset_spec.target].to_numpy(), spec.task, seed)
        reference = conversion.predict_sklearn(model, test[features].iloc[checked], spec.task)
        parity = conversion.parity(reference, served.take(checked), spec.parity, spec.task)
        parity["holdout_rows"] = len(test)
        if not parity["passed"]:
            raise errors.ParityFailedError(
                "ONNX model disagrees with scikit-learn: " + "; ".join(parity["breaches"])
            )
    # Predictions are summarised on the holdout, not the training split: a model's scores on its
    # own training rows are more extreme than on new rows (docs/training.md, "Decisions").
    prediction_profile = profiles.build_prediction(spec.task, served.labels, served.values)
    classes = model.classes_ if spec.task == "classification" else None
    with _stage("metrics and fairness"):
        holdout = _holdout_metrics(spec.task, test[dataset_spec.target].to_numpy(), served, classes)
        fairness_reports = _fairness_reports(frame, spec, served, test, classes)
        gates = _gates(spec, holdout, fairness_reports)
    comparison = None
    if config.champion_artifact is not None and config.champion_digest is not None:
        with _stage("champion on this holdout"):
            comparison = champion.compare(
                config.champion_artifact,
                config.champion_digest,
                spec=spec,
                test=test,
                frame=frame,
                served=served,
                classes=classes,
            )
    # One BLAS thread: the resamples are thin matrix products (k x rows times rows x groups) that
    # two threads only made 2-7x more expensive in CPU time on a busy 2-core machine.
    with _stage("bootstrap intervals"), _one_thread():
        holdout_intervals = _intervals(spec, test, frame, served, classes)
    with _stage("write"):
        digest, uri = _write(
            config,
            spec,
            context,
            raw_uri=dataset_spec.uri,
            model=model,
            model_bytes=model_bytes,
            classes=classes,
            split=split,
            frame_rows=len(frame),
            holdout=holdout,
            parity=parity,
            fairness_reports=fairness_reports,
            proxy_reports=proxy_reports,
            gates=gates,
            intervals=holdout_intervals,
            profile={**feature_profile, "prediction": prediction_profile},
            champion_comparison=comparison,
        )
    summary = {k: gates[k] for k in ("quality", "fairness", "promotable")}
    message = "artifact written; every gate passed" if gates["promotable"] else _gate_message(gates)
    return outcome.build(
        reason=None if gates["promotable"] else "GateFailed",
        message=message,
        artifact={"digest": digest, "uri": uri},
        dataset_sha256=context.dataset_sha256,
        spec_hash=context.spec_hash,
        metrics=holdout if comparison is None else {**holdout, **comparison.challenger_fairness},
        gates=summary,
        **({} if comparison is None else comparison.outcome_fields()),
    )


def _one_thread() -> Any:
    """BLAS and OpenMP pools limited to one thread for the duration of a ``with`` block."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    return threadpool_limits(limits=1)


def _proxy_reports(
    frame: pd.DataFrame, spec: api_model.ModelSpec, columns: list[str], max_rows: int
) -> dict[str, Any]:
    # Small fits: one thread each. Threaded BLAS on a 5,000-row problem only spins, which on a
    # busy machine made one proxy fit 10x slower.
    with _stage("proxies"), _one_thread():
        dataset_spec = spec.dataset
        return proxies.reports(
            frame,
            columns,
            features=list(dataset_spec.features),
            categorical=list(dataset_spec.categorical),
            max_rows=max_rows,
            seed=spec.estimator.seed,
            threshold=spec.protected_attributes.max_proxy_roc_auc,
        )


def _holdout_metrics(
    task: str, y_true: np.ndarray[Any, Any], served: conversion.Predictions, classes: Any
) -> dict[str, float]:
    if task == "classification":
        assert served.labels is not None
        return metrics.classification(y_true, served.labels, served.values, np.asarray(classes))
    return metrics.regression(y_true, served.values)


def _fairness_reports(
    frame: pd.DataFrame,
    spec: api_model.ModelSpec,
    served: conversion.Predictions,
    test: pd.DataFrame,
    classes: Any,
) -> dict[str, Any]:
    gates = spec.fairness_gates
    binary = spec.task == "classification" and classes is not None and len(classes) == 2
    y_pos = pred_pos = None
    if binary:
        assert served.labels is not None
        class_array = np.asarray(classes)
        y_pos = metrics.class_codes(test[spec.dataset.target].to_numpy(), class_array) == 1
        pred_pos = metrics.class_codes(served.labels, class_array) == 1
    reports: dict[str, Any] = {}
    for column in spec.dataset.sensitive:
        if column not in frame.columns:
            reports[column] = fairness.absent_report(gates)
            continue
        groups = fairness.group_labels(test[column], reference=frame[column])
        reports[column] = fairness.column_report(groups, y_pos, pred_pos, gates)
    return reports


def _intervals(
    spec: api_model.ModelSpec,
    test: pd.DataFrame,
    frame: pd.DataFrame,
    served: conversion.Predictions,
    classes: Any,
) -> dict[str, Any]:
    """Bootstrap intervals of the holdout metrics and of each sensitive group's rates (seeded)."""
    target = test[spec.dataset.target].to_numpy()
    groups = {
        column: fairness.group_labels(test[column], reference=frame[column])
        for column in spec.dataset.sensitive
        if column in frame.columns
    }
    if spec.task != "classification":
        return intervals.holdout(
            "regression",
            target,
            served.values,
            None,
            classes=0,
            groups={},
            y_pos=None,
            pred_pos=None,
            seed=spec.estimator.seed,
        )
    assert served.labels is not None
    class_array = np.asarray(classes)
    binary = len(class_array) == 2
    positive = str(class_array[-1])
    return intervals.holdout(
        "classification",
        metrics.class_codes(target, class_array),
        metrics.class_codes(served.labels, class_array),
        served.values,
        classes=len(class_array),
        groups=groups,
        y_pos=target.astype(str) == positive if binary else None,
        pred_pos=served.labels.astype(str) == positive if binary else None,
        seed=spec.estimator.seed,
    )


def _gates(spec: api_model.ModelSpec, holdout: dict[str, float], reports: dict[str, Any]) -> dict[str, Any]:
    quality = metrics.quality_gates(spec.quality_gates, holdout)
    fairness_status = fairness.overall(reports, spec.fairness_gates)
    return {
        "quality": quality["status"],
        "fairness": fairness_status,
        "promotable": quality["status"] == "passed" and fairness_status == "passed",
        "quality_checks": quality["checks"],
        "fairness_checks": {c: r.get("checks", []) for c, r in reports.items()},
    }


def _gate_message(gates: dict[str, Any]) -> str:
    """Every check that did not pass, by gate, value and limit; or why fairness is inconclusive."""
    quality = [
        f"{c['gate']} {c['status']} (value {c['value']}, limit {c['limit']})"
        for c in gates["quality_checks"]
        if c["status"] != "passed"
    ]
    fairness_parts = [
        f"{column}: {c['gate']} {c['status']} (value {c['value']}, limit {c['limit']})"
        for column, checks in gates["fairness_checks"].items()
        for c in checks
        if c["status"] != "passed"
    ]
    if gates["fairness"] == "inconclusive" and not fairness_parts:
        fairness_parts.append("fairness inconclusive: groups below minGroupSize or sensitive columns missing")
    return "artifact kept for audit but not promotable: " + "; ".join(quality + fairness_parts)


def _write(
    config: settings.TrainSettings,
    spec: api_model.ModelSpec,
    context: _Context,
    *,
    raw_uri: str,
    model: Any,
    model_bytes: bytes,
    classes: Any,
    split: pipeline.Split,
    frame_rows: int,
    holdout: dict[str, float],
    parity: dict[str, Any],
    fairness_reports: dict[str, Any],
    proxy_reports: dict[str, Any],
    gates: dict[str, Any],
    intervals: dict[str, Any],
    profile: dict[str, Any],
    champion_comparison: champion.Comparison | None = None,
) -> tuple[str, str]:
    dataset_spec = spec.dataset
    categorical = set(dataset_spec.categorical)
    class_names = [str(c) for c in classes] if classes is not None else None
    schema = {
        "task": spec.task,
        "target": dataset_spec.target,
        "features": [
            {"name": f, "kind": "categorical" if f in categorical else "numeric"}
            for f in dataset_spec.features
        ],
        "classes": class_names,
        "positive_class": class_names[1] if class_names is not None and len(class_names) == 2 else None,
        "sensitive": list(dataset_spec.sensitive),
    }
    assert context.dataset_sha256 is not None and context.spec_hash is not None
    dataset = {"uri": raw_uri, "sha256": context.dataset_sha256, "rows": frame_rows}
    split_info = {
        "seed": spec.estimator.seed,
        "test_fraction": spec.split.test_fraction,
        "stratified": split.stratified,
        "train_rows": len(split.train),
        "test_rows": len(split.test),
    }
    estimator = {
        "class_name": spec.estimator.class_name,
        "params": pipeline.effective_params(model.steps[-1][1]),
    }
    exceptions = policy.exceptions_used(dataset_spec.features, spec)
    gate_summary = {k: gates[k] for k in ("quality", "fairness", "promotable")}
    model_card = card.build(
        name=config.name,
        spec=spec,
        dataset=dataset,
        split=split_info,
        estimator=estimator,
        metrics=holdout,
        fairness=fairness_reports,
        proxies=proxy_reports,
        gates=gate_summary,
        policy_exceptions=exceptions,
    )
    record = lineage.build(
        name=config.name,
        namespace=config.namespace,
        dataset=dataset,
        spec_hash=context.spec_hash,
        seed=spec.estimator.seed,
        split=split_info,
        estimator=estimator,
        policy_exceptions=exceptions,
        image_digest=config.image_digest,
        model_onnx_sha256=artifacts.sha256_bytes(model_bytes),
        feature_schema=schemas.lineage_entry(spec),
    )
    report = {
        "holdout": holdout,
        "parity": parity,
        "fairness": fairness_reports,
        "proxies": proxy_reports,
        "gates": gates,
        "intervals": intervals,
    }
    if champion_comparison is not None:
        report.update(champion_comparison.outcome_fields())
        report["challenger_fairness"] = champion_comparison.challenger_fairness
    files: dict[str, bytes] = {
        "model.onnx": model_bytes,
        "schema.json": artifacts.canonical_json(schema),
        "profile.json": artifacts.canonical_json(profile),
        "metrics.json": artifacts.canonical_json(report),
        "lineage.json": artifacts.canonical_json(record),
        "card.json": artifacts.canonical_json(model_card),
        "card.md": card.to_markdown(model_card).encode(),
        # The spec fields that determine the artifact, so `mlsteward verify` can retrain from the
        # artifact alone even after the Model's spec has changed.
        "spec.json": artifacts.canonical_json(specs.hashed_document(spec)),
    }
    try:
        ref = stores.open_store(config.store).put(files)
    except StoreError as error:
        raise errors.store_failure(error, f"cannot write the artifact to {config.store}: {error}") from error
    except (OSError, artifacts.ArtifactError) as error:
        raise errors.InternalError(f"cannot write the artifact to {config.store}: {error}") from error
    return ref.digest, ref.uri
