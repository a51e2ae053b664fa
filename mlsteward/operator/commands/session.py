"""What the commands share: a client logged in with the kubeconfig, and the objects they read."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from mlsteward import api
from mlsteward.operator import kube, login


class CommandError(Exception):
    """A failure to report in one line, with exit status 1."""


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("deployment", help="name of the mlsteward.io Deployment")
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig's)")


def credentials() -> login.Credentials:
    try:
        return login.kubeconfig()
    except (login.LoginError, OSError) as error:
        raise CommandError(str(error)) from error


def run(work: Callable[[kube.Client, str], Awaitable[int]], namespace: str | None) -> int:
    """Run ``work(client, namespace)`` and turn API failures into one-line messages."""
    info = credentials()
    chosen = namespace or info.default_namespace or "default"

    async def logged_in() -> login.Credentials:
        return info

    async def main() -> int:
        client = kube.Client(logged_in)
        try:
            return await work(client, chosen)
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except kube.ForbiddenError as error:
        raise CommandError(f"forbidden: {error}") from error
    except kube.KubeError as error:
        raise CommandError(str(error)) from error


async def deployment(client: kube.Client, namespace: str, name: str) -> dict[str, Any]:
    body = await client.get(kube.path(api.API_VERSION, "Deployment", namespace, name))
    if body is None:
        raise CommandError(
            f"deployment {name!r}: no deployments.mlsteward.io of that name in namespace {namespace}"
        )
    return body


async def whoami(client: kube.Client) -> str:
    """The user name the API server sees for this kubeconfig (a SelfSubjectReview)."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    answer = await client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review)
    name = ((answer or {}).get("status") or {}).get("userInfo", {}).get("username")
    if not name:
        raise CommandError("the API server did not say who you are (SelfSubjectReview)")
    return str(name)
