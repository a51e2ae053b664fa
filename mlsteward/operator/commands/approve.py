"""``mlsteward approve DEPLOYMENT --version N``: create the Approval a waiting rollout needs.

The Approval names the Deployment, the version and its artifact digest (read from the Model's
status), and ``approvedBy`` is the caller's own user name as the API server reports it, which
is what the admission policy (deploy/admission/approvals.yaml) demands.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence

from mlsteward import api
from mlsteward.operator import kube
from mlsteward.operator.commands import session


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="mlsteward approve",
        description="Approve one model version (by its artifact digest) for a Deployment's rollout.",
    )
    session.add_common(result)
    result.add_argument("--version", type=int, required=True, help="the model version to approve")
    result.add_argument("--reason", default="", help="why, for the audit trail")
    return result


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))

    async def work(client: kube.Client, namespace: str) -> int:
        target = await session.deployment(client, namespace, args.deployment)
        model_name = target["spec"]["modelRef"]["name"]
        model = await client.get(kube.path(api.API_VERSION, "Model", namespace, model_name))
        versions = {v.get("version"): v for v in ((model or {}).get("status") or {}).get("versions") or []}
        chosen = versions.get(args.version)
        digest = ((chosen or {}).get("artifact") or {}).get("digest")
        if not digest:
            raise session.CommandError(
                f"--version {args.version}: Model {model_name} has no version {args.version} with an artifact"
            )
        user = await session.whoami(client)
        suffix = hashlib.sha256(user.encode()).hexdigest()[:8]
        name = f"{args.deployment[:40]}-v{args.version}-{suffix}"
        approval = {
            "apiVersion": api.API_VERSION,
            "kind": "Approval",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "deployment": args.deployment,
                "version": args.version,
                "digest": digest,
                "approvedBy": user,
                "reason": args.reason,
            },
        }
        try:
            await client.request("POST", kube.path(api.API_VERSION, "Approval", namespace), body=approval)
        except kube.ConflictError:
            print(f"approval {name} already exists: version {args.version} was approved by {user}")
            return 0
        print(
            f"approval {name}: {user} approved version {args.version} (sha256:{digest}) for {args.deployment}"
        )
        return 0

    try:
        return session.run(work, args.namespace)
    except session.CommandError as error:
        print(f"mlsteward approve: {error}", file=sys.stderr)
        return 1
