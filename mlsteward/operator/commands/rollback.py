"""``mlsteward rollback DEPLOYMENT``: the kill switch.

Sets the ``mlsteward.io/rollback`` annotation to a new token (and ``mlsteward.io/rollback-version``
when ``--to-version`` is given). The operator acts on a new token before anything else in its
next pass: a rollout in progress stops and all traffic goes to the stable version; with no
rollout in progress, the version served before the current one comes back. The command then
waits until ``status.killSwitch`` shows the token.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import time
from collections.abc import Sequence
from typing import Any

from mlsteward import api
from mlsteward.operator import kube, rollouts
from mlsteward.operator.commands import session


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="mlsteward rollback",
        description="Send all traffic of a Deployment back to its last approved version.",
    )
    session.add_common(result)
    result.add_argument("--to-version", type=int, default=None, help="restore this version instead")
    result.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the operator (0: do not)"
    )
    return result


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    token = "rollback-" + datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")

    async def work(client: kube.Client, namespace: str) -> int:
        body = await session.deployment(client, namespace, args.deployment)
        annotations: dict[str, Any] = {rollouts.ROLLBACK_ANNOTATION: token}
        annotations[rollouts.ROLLBACK_VERSION_ANNOTATION] = (
            str(args.to_version) if args.to_version is not None else None
        )
        await client.merge_patch(kube.path_of(body), {"metadata": {"annotations": annotations}})
        print(f"kill switch {token} set on {args.deployment}")
        deadline = time.monotonic() + args.wait
        while args.wait > 0:
            current = await client.get(kube.path(api.API_VERSION, "Deployment", namespace, args.deployment))
            status = (current or {}).get("status") or {}
            if status.get("killSwitch") == token:
                print(f"version {status.get('activeVersion')} now serves all traffic of {args.deployment}")
                return 0
            if time.monotonic() > deadline:
                raise session.CommandError(f"the operator did not act on {token} within {args.wait:.0f}s")
            await asyncio.sleep(0.2)
        return 0

    try:
        return session.run(work, args.namespace)
    except session.CommandError as error:
        print(f"mlsteward rollback: {error}", file=sys.stderr)
        return 1
