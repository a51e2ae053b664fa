"""``mlsteward history DEPLOYMENT [--at TIME] [--verify]``: which version served when.

Reads ``status.history`` (the hash-chained records) and prints it, answers which version
served at an RFC 3339 time, and checks the chain: exit status 1 when it is broken.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mlsteward.operator import history, kube
from mlsteward.operator.commands import session


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="mlsteward history", description="Show, query and verify a Deployment's serving history."
    )
    session.add_common(result)
    result.add_argument("--at", default=None, help="RFC 3339 time: print the version that served then")
    result.add_argument("--verify", action="store_true", help="only check the hash chain")
    return result


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    when = None
    if args.at is not None:
        try:
            when = history.parse_time(args.at)
        except ValueError:
            print(f"mlsteward history: --at {args.at!r} is not an RFC 3339 time", file=sys.stderr)
            return 2

    async def work(client: kube.Client, namespace: str) -> int:
        body = await session.deployment(client, namespace, args.deployment)
        records = (body.get("status") or {}).get("history") or []
        problems = history.verify(records)
        for problem in problems:
            print(f"broken chain: {problem}", file=sys.stderr)
        if args.verify:
            if not problems:
                print(f"history of {args.deployment}: {len(records)} records, chain intact")
            return 1 if problems else 0
        if when is not None:
            found = history.served_at(records, when)
            if found is None:
                print(f"nothing served {args.deployment} at {args.at}", file=sys.stderr)
                return 1
            print(
                f"version {found['version']} (sha256:{found['digest']}) "
                f"since {found['at']} ({found['action']})"
            )
            return 1 if problems else 0
        for record in records:
            print(
                f"{record['at']}  {record['action']:<10}  version {record['version']:<4}  "
                f"approvedBy={record.get('approvedBy') or '-'}  {record.get('reason', '')}"
            )
        return 1 if problems else 0

    try:
        return session.run(work, args.namespace)
    except session.CommandError as error:
        print(f"mlsteward history: {error}", file=sys.stderr)
        return 1
