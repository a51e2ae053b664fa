"""``mlsteward dev agent``: run the development node agent (development and tests only)."""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys

from mlsteward.dev.agent import agent, ipam


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mlsteward dev agent",
        description=(
            "A development stand-in for the kubelet: registers nodes labelled type=mlsteward-agent and "
            "runs the pods scheduled to them as local processes (images ignored, securityContext not "
            "enforced). For development and tests only; see docs/dev-agent.md."
        ),
    )
    parser.add_argument(
        "--kubeconfig",
        type=pathlib.Path,
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig of the control plane (default: $KUBECONFIG)",
    )
    parser.add_argument(
        "--state", type=pathlib.Path, required=True, help="state directory (logs, volumes, pods)"
    )
    parser.add_argument("--nodes", type=int, default=1, help="how many nodes to register (default 1)")
    parser.add_argument(
        "--name-prefix", default="agent", help="node names are PREFIX-0, PREFIX-1, ... (default agent)"
    )
    parser.add_argument(
        "--pod-cidr",
        default=ipam.DEFAULT_POD_CIDR,
        help=f"loopback range for pod IPs (default {ipam.DEFAULT_POD_CIDR})",
    )
    parser.add_argument(
        "--backoff-seconds", type=float, default=10.0, help="first restart back-off (default 10)"
    )
    parser.add_argument(
        "--max-backoff-seconds", type=float, default=300.0, help="longest back-off (default 300)"
    )
    parser.add_argument("--sync-seconds", type=float, default=1.0, help="periodic pod sync (default 1)")
    parser.add_argument("--heartbeat-seconds", type=float, default=10.0, help="node heartbeat (default 10)")
    parser.add_argument(
        "--shutdown-grace-seconds",
        type=float,
        default=10.0,
        help="on agent shutdown, SIGKILL processes still running after this long (default 10)",
    )
    args = parser.parse_args(argv)
    if args.kubeconfig is None:
        parser.error("--kubeconfig is required (or set $KUBECONFIG)")
    if not 1 <= args.nodes <= 254:
        parser.error("--nodes must be between 1 and 254")
    settings = agent.Settings(
        kubeconfig=pathlib.Path(args.kubeconfig),
        state=args.state,
        nodes=args.nodes,
        name_prefix=args.name_prefix,
        pod_cidr=args.pod_cidr,
        backoff_s=args.backoff_seconds,
        max_backoff_s=args.max_backoff_seconds,
        sync_s=args.sync_seconds,
        heartbeat_s=args.heartbeat_seconds,
        shutdown_grace_s=args.shutdown_grace_seconds,
    )
    try:
        ipam.validate(args.pod_cidr)
    except ipam.IpamError as error:
        print(f"mlsteward dev agent: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return agent.run(settings)
