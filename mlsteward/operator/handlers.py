"""Watch events -> work-queue keys, thin: every event only puts a key on the queue.

Reconciling is level-based: the work queue reconciles each key from the objects as they are
now, never from the event, so a missed event, a crash or a restart changes nothing. The
watches (``watching.py``) list and then watch each kind; the listing's items arrive as events
of type None, exactly like the periodic resync of a key.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import logging
from typing import Any

from mlsteward import api
from mlsteward.operator import kube, login, memory, watching
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import common as builders
from mlsteward.operator.queue import Key, WorkQueue
from mlsteward.operator.reconcilers import common, deployments, models, monitors

_log = logging.getLogger("mlsteward.operator")
# How often the operator checks whether a burst of work is over (to give its memory back).
RELEASE_CHECK_SECONDS = 2.0
# Passes since the last release that make a burst worth a full collection (tens of ms).
RELEASE_AFTER_PASSES = 100
# The first pass waits for every kind's first listing (so that it starts from the listed
# Jobs instead of reading them one by one), but no longer than this, in seconds: a kind that
# cannot be listed (a missing permission) must not stop the others from being reconciled.
LISTINGS_WAIT_SECONDS = 10.0


def now_text() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _relevant(event_type: str | None, body: dict[str, Any]) -> bool:
    """Whether a child's event can change its owner's status. A running Job's progress
    (active, ready counts) cannot: only its finishing, its deletion, or a fresh listing can."""
    if body.get("kind") != "Job" or event_type in {None, "DELETED"}:
        return True
    return any(
        c.get("type") in {"Complete", "Failed"} and c.get("status") == "True"
        for c in (body.get("status") or {}).get("conditions") or []
    )


class ReferenceIndex:
    """Which objects reference which target by name, within a namespace (kept from watch events)."""

    def __init__(self) -> None:
        self._by_target: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
        self._target_of: dict[tuple[str, str], str] = {}

    def set(self, namespace: str, name: str, target: str | None) -> None:
        """``name`` now references ``target`` (None: it is gone)."""
        old = self._target_of.pop((namespace, name), None)
        if old is not None:
            self._by_target[(namespace, old)].discard(name)
            if not self._by_target[(namespace, old)]:
                del self._by_target[(namespace, old)]
        if target is not None:
            self._target_of[(namespace, name)] = target
            self._by_target[(namespace, target)].add(name)

    def referrers(self, namespace: str, target: str) -> list[str]:
        return sorted(self._by_target.get((namespace, target), ()))


class Operator:
    """The running operator's state: the API client, the work queue and two small indexes."""

    def __init__(self, settings: settings_module.Settings) -> None:
        self.settings = settings

        async def credentials() -> login.Credentials:
            return login.credentials()

        self.context = common.Context(kube=kube.Client(credentials), settings=settings)
        self.queue = WorkQueue(self.reconcile, workers=settings.workers)
        self.context.defer = self.queue.defer
        self.deployments_by_model = ReferenceIndex()
        self.monitors_by_deployment = ReferenceIndex()
        self.watches = [
            watching.Watch(self.context.kube, kind, namespace, handler, settings.watch_timeout_seconds)
            for kind, handler in self._kinds()
            for namespace in (settings.namespaces or [None])
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def _kinds(self) -> list[tuple[watching.Kind, watching.Handler]]:
        managed = f"{builders.LABEL_MANAGED_BY}={builders.MANAGED_BY}"
        ours = api.API_VERSION
        return [
            # Jobs first: their listing fills the cache that the first Model passes start from.
            (watching.Kind("batch/v1", "Job", "jobs", managed), self.on_child),
            (watching.Kind("apps/v1", "Deployment", "deployments", managed), self.on_child),
            (watching.Kind(ours, "Model", "models"), self.on_model),
            (watching.Kind(ours, "Deployment", "deployments"), self.on_deployment),
            (watching.Kind(ours, "Monitor", "monitors"), self.on_monitor),
            (watching.Kind(ours, "Approval", "approvals"), self.on_approval),
        ]

    def alive(self) -> bool:
        """Every watch and the work queue are still running (the liveness endpoint's answer)."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    async def reconcile(self, key: Key) -> float | None:
        kind, namespace, name = key
        reconcilers = {"Model": models, "Deployment": deployments, "Monitor": monitors}
        delay: float | None = await reconcilers[kind].reconcile(self.context, namespace, name, now_text())
        return delay

    def start(self) -> None:
        self._tasks = [asyncio.create_task(watch.run()) for watch in self.watches]
        self._tasks.append(asyncio.create_task(self._run_queue()))
        self._tasks.append(asyncio.create_task(self._release_memory_when_idle()))

    async def _run_queue(self) -> None:
        listings = [asyncio.create_task(watch.listed.wait()) for watch in self.watches]
        _, late = await asyncio.wait(listings, timeout=LISTINGS_WAIT_SECONDS)
        for task in late:
            task.cancel()
        if late:
            _log.warning("starting before every kind was listed (%d watches still listing)", len(late))
        await self.queue.run()

    async def _release_memory_when_idle(self) -> None:
        """After a burst of work, once the queue is quiet (not merely idle between two watch events
        of the burst: a full collection stalls the event loop), give the freed memory back."""
        released_at = 0
        while True:
            await asyncio.sleep(RELEASE_CHECK_SECONDS)
            if self.queue.done - released_at >= RELEASE_AFTER_PASSES and self.queue.quiet():
                released_at = self.queue.done
                memory.release()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.context.kube.close()

    def on_model(self, event_type: str | None, body: dict[str, Any]) -> None:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        self._cache(event_type, body)
        # Even our own status write concerns the Deployments that serve this Model (a new
        # champion or challenger): only the Model itself has nothing new to reconcile.
        for deployment in self.deployments_by_model.referrers(namespace, name):
            self.queue.add(("Deployment", namespace, deployment))
        if self._echo(event_type, body):
            return
        self._enqueue("Model", namespace, name, event_type)

    def on_deployment(self, event_type: str | None, body: dict[str, Any]) -> None:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        # Our own status write (the served version) concerns the Monitors watching it.
        for monitor in self.monitors_by_deployment.referrers(namespace, name):
            self.queue.add(("Monitor", namespace, monitor))
        if self._echo(event_type, body):
            return
        model = (body.get("spec") or {}).get("modelRef", {}).get("name", "")
        self.deployments_by_model.set(namespace, name, None if event_type == "DELETED" else model)
        self._enqueue("Deployment", namespace, name, event_type)

    def on_monitor(self, event_type: str | None, body: dict[str, Any]) -> None:
        if self._echo(event_type, body):
            return
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        target = (body.get("spec") or {}).get("deploymentRef", {}).get("name", "")
        self.monitors_by_deployment.set(namespace, name, None if event_type == "DELETED" else target)
        self._enqueue("Monitor", namespace, name, event_type)

    def on_approval(self, event_type: str | None, body: dict[str, Any]) -> None:
        """An Approval appeared (or went): the Deployment it names may be waiting for it."""
        if event_type == "DELETED":
            return
        deployment = (body.get("spec") or {}).get("deployment")
        if deployment:
            self.queue.add(("Deployment", body["metadata"]["namespace"], str(deployment)))

    def on_child(self, event_type: str | None, body: dict[str, Any]) -> None:
        """A Job or apps/v1 Deployment changed: reconcile its mlsteward owner (and Monitors)."""
        if body.get("kind") == "Job":
            self._cache(event_type, body)
        if self._echo(event_type, body) or not _relevant(event_type, body):
            return
        meta = body["metadata"]
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("apiVersion") == api.API_VERSION:
                self.queue.add((ref["kind"], meta["namespace"], ref["name"]))
        if body.get("kind") == "Deployment":
            for monitor in self.monitors_by_deployment.referrers(meta["namespace"], meta["name"]):
                self.queue.add(("Monitor", meta["namespace"], monitor))

    def _cache(self, event_type: str | None, body: dict[str, Any]) -> None:
        if event_type == "DELETED":
            meta = body["metadata"]
            self.context.bodies.drop(body["kind"], meta["namespace"], meta["name"])
        else:
            self.context.bodies.put(body)

    def _echo(self, event_type: str | None, body: dict[str, Any]) -> bool:
        """True for the watch echo of our own last write: nothing new to reconcile."""
        if event_type == "DELETED":
            self.context.kube.forget(body)
            return False
        return event_type is not None and self.context.kube.is_own_write(body)

    def _enqueue(self, kind: str, namespace: str, name: str, event_type: str | None) -> None:
        key = (kind, namespace, name)
        if event_type == "DELETED":
            self.queue.forget(key)
        else:
            self.queue.add(key)
