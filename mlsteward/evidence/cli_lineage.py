"""``mlsteward lineage``: which Model versions were trained on a dataset, and where they served.

Exit codes: 0 the query ran (also when nothing used the dataset: the answer is then empty),
2 bad input (a malformed digest, no kubeconfig, the cluster unreachable or refusing the read).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from mlsteward.evidence import cluster, sources, usage

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlsteward lineage",
        description="List every Model version trained on a dataset (by its sha256) and every "
        "Deployment that served those versions, with times, as the current kubeconfig may read them.",
    )
    parser.add_argument("--dataset", required=True, help="the dataset's digest: sha256:<64 hex digits>")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", help="one namespace (default: the kubeconfig's)")
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="every namespace the caller may read"
    )
    parser.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        digest = sources.strip_digest(args.dataset)
        kube = cluster.Cluster.from_environment()
        namespace = None if args.all_namespaces else (args.namespace or kube.namespace)
        listing = usage.collect(kube, namespace)
    except (sources.EvidenceError, cluster.ClusterError) as error:
        print(f"mlsteward lineage: {error.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    answer = usage.find(listing.models, listing.deployments, digest)
    answer["scope"] = "all readable namespaces" if namespace is None else namespace
    answer["unreadable_namespaces"] = listing.unreadable
    print(json.dumps(answer, sort_keys=True) if args.json else _text(answer))
    return 0


def _text(answer: dict[str, Any]) -> str:
    lines = [f"dataset {answer['dataset']} ({answer['scope']})", "", "Model versions trained on it:"]
    lines += [
        f"  {v['namespace']}/{v['model']} v{v['version']}  {v['phase']}  trained {v['trained_at']}  "
        f"artifact sha256:{v['artifact']}" + (f"  ({', '.join(v['aliases'])})" if v["aliases"] else "")
        for v in answer["versions"]
    ] or ["  none"]
    lines += ["", "Deployments that served them:"]
    lines += [
        f"  {d['namespace']}/{d['deployment']} v{d['version']}  {d['action']}  at {d['at']}  [{d['source']}]"
        for d in answer["deployments"]
    ] or ["  none"]
    if answer["unreadable_namespaces"]:
        lines += ["", "not readable with these credentials: " + ", ".join(answer["unreadable_namespaces"])]
    return "\n".join(lines)
