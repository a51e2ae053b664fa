"""ConfigMaps, Secrets and service-account tokens from the API server, briefly cached.

Every pod sync reads the objects its volumes and environment refer to; a one-second cache
keeps a node full of pods from asking for the same ConfigMap many times a second. Tokens
come from the TokenRequest API, bound to the pod, and are reused until 80% of their life
has passed, as the kubelet does.
"""

from __future__ import annotations

import time
from typing import Any

from mlsteward.dev.agent import kube

Obj = dict[str, Any]


class ApiSources:
    """The agent's view of the objects that pods mount or read into their environment."""

    def __init__(self, api: kube.Client, ttl_s: float = 1.0) -> None:
        self.api = api
        self.ttl_s = ttl_s
        self._objects: dict[str, tuple[float, Obj | None]] = {}
        self._tokens: dict[tuple[str, str, str], tuple[float, str]] = {}

    async def _get(self, path: str) -> Obj | None:
        cached = self._objects.get(path)
        if cached and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        try:
            obj: Obj | None = await self.api.get(path)
        except kube.ApiError as error:
            if error.status != 404:
                raise
            obj = None
        self._objects[path] = (time.monotonic(), obj)
        return obj

    async def configmap(self, namespace: str, name: str) -> Obj | None:
        return await self._get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    async def secret(self, namespace: str, name: str) -> Obj | None:
        return await self._get(f"/api/v1/namespaces/{namespace}/secrets/{name}")

    async def token(self, pod: Obj, audience: str | None, expiration_s: int) -> str:
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        key = (meta["uid"], account, audience or "")
        cached = self._tokens.get(key)
        if cached and time.monotonic() < cached[0]:
            return cached[1]
        spec: Obj = {
            "expirationSeconds": max(expiration_s, 600),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        }
        if audience:
            spec["audiences"] = [audience]
        answer = await self.api.create(
            f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        token = str(answer["status"]["token"])
        self._tokens[key] = (time.monotonic() + 0.8 * max(expiration_s, 600), token)
        return token

    def forget(self, uid: str) -> None:
        """Drop the tokens of a pod that is gone."""
        for key in [k for k in self._tokens if k[0] == uid]:
            del self._tokens[key]
