"""Watches: list, then watch from the list's resourceVersion, forever, for one kind.

What client-go's reflector does, and no more: the listing is delivered first (event type None,
like a resync), then every watch event in order; bookmarks only move the resourceVersion; a
410 Gone (the resourceVersion is too old, as after a long disconnection or an API server
restart) lists again; any other failure waits (1 s, doubling to 16 s) and lists again. The
handler is a plain function that must not block: here it only puts keys on the work queue.

Why not kopf: kopf hands each event to a per-object worker task after a batching window, and
builds its body wrappers and handler machinery around it. With a handler that only enqueues a
key that costs more than the whole rest of a pass (bench/operator/RESULTS.md): ~1 s p99 from a
Model's creation to its Job with 100 Models at once on 2 CPUs, where the API server's own floor
is ~0.1 s, and seconds to work through the initial listing of 1,000 Models after a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from mlsteward.operator import kube

_log = logging.getLogger("mlsteward.operator.watching")
FIRST_RETRY = 1.0
LAST_RETRY = 16.0

Handler = Callable[[str | None, dict[str, Any]], None]


@dataclasses.dataclass(frozen=True)
class Kind:
    """One watched kind: ``api_version`` as in manifests, its plural, an optional label selector."""

    api_version: str
    kind: str
    plural: str
    label_selector: str | None = None

    def url(self, namespace: str | None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/namespaces/{namespace}/{self.plural}" if namespace else f"{prefix}/{self.plural}"


class Watch:
    """Usage::

    watch = Watch(client, Kind("batch/v1", "Job", "jobs"), None, handler, timeout_seconds=300)
    task = asyncio.create_task(watch.run())
    await watch.listed.wait()   # the first listing has been handed to ``handler``
    """

    def __init__(
        self,
        client: kube.Client,
        kind: Kind,
        namespace: str | None,
        handler: Handler,
        timeout_seconds: int,
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self._client = client
        self._handler = handler
        self._timeout = timeout_seconds
        self.listed = asyncio.Event()
        """Set once the first listing has been delivered."""
        self.restarts = 0
        """How many times it listed again after a failure or a 410 Gone."""

    def __str__(self) -> str:
        return f"{self.kind.plural}" + (f" in {self.namespace}" if self.namespace else "")

    async def run(self) -> None:
        retry = FIRST_RETRY
        while True:
            try:
                newest: str | None = await self._list()
                retry = FIRST_RETRY
                while newest is not None:
                    newest = await self._watch(newest)
                _log.info("watch of %s: resourceVersion too old, listing again", self)
            except kube.KubeError as error:
                _log.warning("watch of %s failed, listing again in %.0fs: %s", self, retry, error)
                await asyncio.sleep(retry)
                retry = min(LAST_RETRY, retry * 2)
            self.restarts += 1

    async def _list(self) -> str:
        items, version = await self._client.list_with_version(
            self.kind.url(self.namespace), self.kind.label_selector
        )
        for item in items:
            # A list's items carry no apiVersion and kind of their own.
            item["apiVersion"], item["kind"] = self.kind.api_version, self.kind.kind
            self._deliver(None, item)
        self.listed.set()
        return version

    async def _watch(self, version: str) -> str | None:
        """Watch from ``version`` until the API server ends the stream; returns the newest
        resourceVersion seen, or None when it is gone (410: list again)."""
        params = {
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self._timeout),
        }
        if self.kind.label_selector:
            params["labelSelector"] = self.kind.label_selector
        try:
            async for event in self._client.watch(self.kind.url(self.namespace), params, self._timeout + 30):
                kind, body = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if body.get("code") == 410:
                        return None
                    raise kube.KubeError(
                        int(body.get("code") or 0), f"watch of {self}: {body.get('message')}"
                    )
                version = str((body.get("metadata") or {}).get("resourceVersion") or version)
                if kind in {"ADDED", "MODIFIED", "DELETED"}:
                    self._deliver(kind, body)
        except kube.KubeError as error:
            if error.status == 410:
                return None
            raise
        return version

    def _deliver(self, event_type: str | None, body: dict[str, Any]) -> None:
        try:
            self._handler(event_type, body)
        except Exception:
            _log.exception("handling a %s event of %s failed", event_type or "LISTED", self)
