"""The newest body seen of each Model and training Job, from watch events and the operator's own
writes, so that a pass starts from memory instead of a GET.

Why it is safe: a pass over a cached body is optimistic, never trusted for a write that could
duplicate or overwrite anything. Its status patch carries the body's ``resourceVersion`` (a
stale body fails with 409) and its Job is created with a POST of the version's deterministic
name (an existing Job fails with 409); either 409 sends the reconciler back to fresh reads.
An entry older than ``max_age`` is not served, so the periodic passes (the resync and the
training poll) always read the API server: a watch event that never came (a Job deleted while
the watch was reconnecting) is noticed there, as before.

Bodies are kept as compact JSON (``orjson``), without ``managedFields``, and Jobs trimmed to
the fields the Model reconciler reads: a few hundred bytes an object rather than tens of kB of
Python dicts, which is what keeps the operator's memory flat with thousands of objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

Key = tuple[str, str, str]  # (kind, namespace, name)


def _key(body: dict[str, Any]) -> Key:
    meta = body["metadata"]
    return (str(body.get("kind", "")), str(meta.get("namespace", "")), str(meta["name"]))


def trim_job(body: dict[str, Any]) -> dict[str, Any]:
    """The part of a Job that the Model reconciler reads: identity, labels, annotations, owners,
    creation time and the finished conditions."""
    meta = body.get("metadata") or {}
    kept = ("name", "namespace", "uid", "resourceVersion", "labels", "annotations", "ownerReferences")
    return {
        "apiVersion": body.get("apiVersion", "batch/v1"),
        "kind": "Job",
        "metadata": {k: meta[k] for k in (*kept, "creationTimestamp") if k in meta},
        "status": {"conditions": (body.get("status") or {}).get("conditions") or []},
    }


def _trim(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("kind") == "Job":
        return trim_job(body)
    meta = body.get("metadata") or {}
    if "managedFields" not in meta:
        return body
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


class BodyCache:
    """Usage::

    cache = BodyCache(max_age=10.0)
    cache.put(event_body)                       # from the watch
    body = cache.get("Model", "default", "m")   # None: unknown or too old: GET it
    cache.wrote(response, superseded="41")      # after our own write of version 41
    """

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._entries: dict[Key, tuple[float, bytes]] = {}
        # key -> the resourceVersion our own last write replaced: its watch event, if it comes
        # after the write's response, is older than what the cache holds and must not win.
        self._superseded: dict[Key, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, body: dict[str, Any]) -> None:
        """Remember ``body`` (a watch event's object) as the newest of its object."""
        key = _key(body)
        version = (body.get("metadata") or {}).get("resourceVersion")
        if version is not None and self._superseded.get(key) == version:
            return
        self._entries[key] = (self._clock(), orjson.dumps(_trim(body)))

    def wrote(self, body: dict[str, Any], superseded: str | None = None) -> None:
        """Remember the object as our own write returned it (newer than the body it replaced)."""
        key = _key(body)
        if superseded is not None:
            self._superseded[key] = superseded
        self._entries[key] = (self._clock(), orjson.dumps(_trim(body)))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The newest body seen, when seen within ``max_age`` seconds; else None."""
        entry = self._entries.get((kind, namespace, name))
        if entry is None or self._clock() - entry[0] > self.max_age:
            return None
        body: dict[str, Any] = orjson.loads(entry[1])
        return body

    def drop(self, kind: str, namespace: str, name: str) -> None:
        """Forget a deleted object."""
        self._entries.pop((kind, namespace, name), None)
        self._superseded.pop((kind, namespace, name), None)
