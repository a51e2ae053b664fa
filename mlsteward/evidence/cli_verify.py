"""``mlsteward verify``: retrain a Model version from its lineage and say whether it reproduces.

Exit codes: 0 reproduced (identical ONNX bytes, or equivalent within the tolerances when a
library version differs; ``--require-identical`` makes equivalent exit 1), 1 differs, 2 bad
input (no such Model or version, an artifact that fails verification, bad flags), 3 not
reproducible (the dataset changed or cannot be read, or retraining failed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys
import tempfile
from collections.abc import Sequence

from mlsteward.api import model as api_model
from mlsteward.evidence import cluster, sources


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlsteward verify",
        description="Retrain a Model version from its recorded lineage (dataset digest, spec, seed) and "
        "compare with its artifact: identical ONNX bytes, or metrics and predictions within tolerances "
        "when library versions differ. Reads the Model through the current kubeconfig, or offline "
        "from --artifact.",
    )
    sources.add_version_arguments(parser)
    parser.add_argument("--spec", type=pathlib.Path, help="the Model spec, for artifacts without spec.json")
    parser.add_argument(
        "--store", help="read the artifact from this store location instead of the recorded URI's"
    )
    parser.add_argument("--metric-tolerance", type=float, default=0.01, help="default 0.01")
    parser.add_argument("--label-tolerance", type=float, default=0.01, help="share of labels; default 0.01")
    parser.add_argument("--score-tolerance", type=float, default=0.05, help="default 0.05")
    parser.add_argument("--require-identical", action="store_true", help="equivalent is not enough")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return parser


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `mlsteward train` does (docs/training.md)
    from mlsteward.evidence import reproduce  # the trainer's heavy imports, once the flags are sound

    try:
        record, _ = sources.resolve_version(args)
        override = _read_spec(args.spec) if args.spec is not None else None
        tolerance = reproduce.Tolerance(args.metric_tolerance, args.label_tolerance, args.score_tolerance)
        with tempfile.TemporaryDirectory(prefix="mlsteward-verify-cache-") as cache:
            artifact = sources.open_artifact(
                record.artifact_uri, record.digest, args.store, pathlib.Path(cache)
            )
            report = reproduce.verify(artifact, spec_override=override, tolerance=tolerance)
    except (sources.EvidenceError, cluster.ClusterError) as error:
        print(f"mlsteward verify: {error.message}", file=sys.stderr)
        return reproduce.EXIT_BAD_INPUT
    if record.model is not None:
        report = {"model": f"{record.namespace}/{record.model}", "version": record.number, **report}
    print(json.dumps(report, sort_keys=True) if args.json else _text(report))
    code = reproduce.EXIT_CODES[report["verdict"]]
    if args.require_identical and report["verdict"] == "equivalent":
        code = 1
    return code


def _read_spec(path: pathlib.Path) -> api_model.ModelSpec:
    from mlsteward.training import errors, specs

    try:
        return specs.parse_spec(specs.read_spec_text(path, None), f"--spec {path}")
    except errors.TrainingError as error:
        raise sources.EvidenceError(error.message) from error


def _text(report: dict[str, object]) -> str:
    lines = [f"{str(report['verdict']).upper()}: {report['message']}"]
    if "model" in report:
        lines.append(f"model      {report['model']} version {report['version']}")
    lines.append(f"artifact   sha256:{report['artifact']}")
    dataset = report["dataset"]
    assert isinstance(dataset, dict)
    lines.append(f"dataset    {dataset['uri']} sha256:{dataset['sha256']}")
    onnx = report.get("model_onnx_sha256")
    if isinstance(onnx, dict):
        lines.append(f"model.onnx recorded {onnx['recorded']}, rebuilt {onnx['rebuilt']}")
    differing = report.get("versions_differing") or {}
    assert isinstance(differing, dict)
    for name, change in differing.items():
        lines.append(f"library    {name}: recorded {change['recorded']}, now {change['now']}")
    metrics = report.get("metrics") or {}
    assert isinstance(metrics, dict)
    for name, entry in metrics.items():
        lines.append(f"metric     {name}: recorded {entry['recorded']}, rebuilt {entry['rebuilt']}")
    return "\n".join(lines)
