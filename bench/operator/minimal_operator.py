"""A minimal kopf operator for comparison: on Model creation, POST one Job. Nothing else.

Run: python bench/operator/minimal_operator.py NAMESPACE (KUBECONFIG set). kopf's defaults:
progress in annotations, one create handler, no reconciling, no status.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import kopf

from mlsteward.operator import kube, login


def main() -> None:
    namespace = sys.argv[1]
    registry = kopf.OperatorRegistry()

    async def credentials() -> login.Credentials:
        return login.kubeconfig()

    client = kube.Client(credentials)

    @kopf.on.login(registry=registry)
    def _login(**_: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())

    @kopf.on.create("mlsteward.io", "v1alpha1", "models", registry=registry)
    async def _create(name: str, namespace: str | None, uid: str, **_: Any) -> None:
        assert namespace is not None
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": f"{name}-v1",
                "namespace": namespace,
                "ownerReferences": [
                    {
                        "apiVersion": "mlsteward.io/v1alpha1",
                        "kind": "Model",
                        "name": name,
                        "uid": uid,
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "train", "image": "mlsteward:0.1.0"}],
                    }
                },
            },
        }
        await client.request("POST", kube.path("batch/v1", "Job", namespace), body=job)

    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    settings.posting.enabled = False
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(kopf.operator(registry=registry, settings=settings, standalone=True, namespaces=[namespace]))


if __name__ == "__main__":
    main()
