"""``mlsteward docs``: write one version's documentation bundle (Markdown and self-contained HTML).

Exit codes: 0 written, 2 bad input (no such Model or version, an artifact that fails
verification, an output directory that cannot be written). The bundle is written even when
required documentation is missing; it says so at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from mlsteward.evidence import bundle, cluster, render, sources

EXIT_BAD_INPUT = 2
# Files the bundle reads from the artifact; spec.json is optional (older artifacts lack it).
_FILES = ("lineage.json", "metrics.json", "card.json", "schema.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlsteward docs",
        description="Write a Model version's documentation bundle: intended use, data and digest, features "
        "and excluded protected attributes, metrics and per-group fairness with bootstrap intervals, proxy "
        "findings, gates, promotion history, limitations, monitoring thresholds. Reads the Model through "
        "the current kubeconfig, or offline from --artifact.",
    )
    sources.add_version_arguments(parser)
    parser.add_argument("--store", help="read the artifact from this store location instead")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."), help="output directory")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        deployments: list[dict[str, Any]] = []
        monitors: list[dict[str, Any]] = []
        approvals: list[dict[str, Any]] = []
        record, kube = sources.resolve_version(args)
        if kube is not None:
            assert record.namespace is not None and record.model is not None
            deployments = sources.deployments_of(kube, record.namespace, record.model)
            names = [str((d.get("metadata") or {}).get("name")) for d in deployments]
            monitors = sources.monitors_of(kube, record.namespace, names)
            approvals = sources.approvals_of(kube, record.namespace, record.digest)
        with tempfile.TemporaryDirectory(prefix="mlsteward-docs-cache-") as cache:
            artifact = sources.open_artifact(
                record.artifact_uri, record.digest, args.store, pathlib.Path(cache)
            )
            names = [*_FILES, *(["spec.json"] if "spec.json" in artifact.files else [])]
            files = {name: sources.read_json(artifact, name) for name in names}
        document = bundle.assemble(
            digest=record.digest,
            uri=record.artifact_uri,
            files=files,
            model=record.body or None,
            record=record.record or None,
            deployments=deployments,
            monitors=monitors,
            approvals=approvals,
        )
        written = _write(args.out, _stem(record), document)
    except (sources.EvidenceError, cluster.ClusterError) as error:
        print(f"mlsteward docs: {error.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        print(f"mlsteward docs: cannot write the bundle to {args.out}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for path in written:
        print(path)
    missing = document["documentation"]["missing"]
    if missing:
        print(f"mlsteward docs: required documentation is missing: {', '.join(missing)}", file=sys.stderr)
    return 0


def _stem(record: sources.VersionRecord) -> str:
    if record.model is not None and record.number is not None:
        return f"{record.model}-v{record.number}"
    return f"artifact-{record.digest[:12]}"


def _write(out: pathlib.Path, stem: str, document: dict[str, object]) -> list[pathlib.Path]:
    """Each file written whole under a temporary name, then renamed: never a half-written bundle."""
    out.mkdir(parents=True, exist_ok=True)
    contents = {
        f"{stem}.html": render.to_html(document),
        f"{stem}.md": render.to_markdown(document),
        f"{stem}.json": json.dumps(document, indent=2, sort_keys=True) + "\n",
    }
    written = []
    for name, text in contents.items():
        target = out / name
        staging = out / f".{name}.tmp"
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, target)
        written.append(target)
    return written
