"""kopf registration, thin: every watch event only puts a key on the work queue.

Why ``kopf.on.event`` and not create/update handlers: reconciling is level-based, so nothing
needs kopf's per-handler progress or diff base, and no write of kopf's own can ever be
separated from our status write by a crash. kopf here only watches (with reconnects, timeouts
and the initial listing that doubles as "resume"), and the work queue reconciles each key from
the objects as they are now. kopf's storages are still pointed at ``status.kopf`` (see
``cli.kopf_settings``) so that nothing of kopf's ever lands in annotations.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import logging
import os
from typing import Any

import kopf

from mlsteward import api
from mlsteward.operator import kube, memory
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import common as builders
from mlsteward.operator.queue import Key, WorkQueue
from mlsteward.operator.reconcilers import common, deployments, models, monitors

_log = logging.getLogger("mlsteward.operator")
_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Where the ServiceAccount token and CA are mounted, when not at the usual place. The chart sets
# it to the usual path, which the development node agent maps to its host directory.
SA_DIR_ENV = "MLSTEWARD_SERVICE_ACCOUNT_DIR"
# How often the operator checks whether a burst of work is over (to give its memory back).
RELEASE_CHECK_SECONDS = 2.0
# Passes since the last release that make a burst worth a full collection (tens of ms).
RELEASE_AFTER_PASSES = 100


def now_text() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def credentials() -> kopf.ConnectionInfo:
    """The pod's ServiceAccount when in a cluster (token and CA in ``$MLSTEWARD_SERVICE_ACCOUNT_DIR``,
    by default the usual mount path), else the kubeconfig (``$KUBECONFIG``).

    Read again at every (re)login, so a rotated token is picked up."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    account = os.environ.get(SA_DIR_ENV) or _SA_DIR
    if host and port and os.path.exists(f"{account}/token"):
        with open(f"{account}/token", encoding="utf-8") as handle:
            token = handle.read().strip()
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return kopf.ConnectionInfo(server=server, ca_path=f"{account}/ca.crt", scheme="Bearer", token=token)
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    if info is None:
        raise kopf.LoginError("no in-cluster ServiceAccount and no kubeconfig ($KUBECONFIG) to log in with")
    return info


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

        async def login() -> kopf.ConnectionInfo:
            return credentials()

        self.context = common.Context(kube=kube.Client(login), settings=settings)
        self.queue = WorkQueue(self.reconcile, workers=settings.workers)
        self.context.defer = self.queue.defer
        self.deployments_by_model = ReferenceIndex()
        self.monitors_by_deployment = ReferenceIndex()
        self._task: asyncio.Task[None] | None = None
        self._relax: asyncio.Task[None] | None = None

    async def reconcile(self, key: Key) -> float | None:
        kind, namespace, name = key
        reconcilers = {"Model": models, "Deployment": deployments, "Monitor": monitors}
        delay: float | None = await reconcilers[kind].reconcile(self.context, namespace, name, now_text())
        return delay

    def start(self) -> None:
        self._task = asyncio.create_task(self._run_queue())
        self._relax = asyncio.create_task(self._release_memory_when_idle())

    async def _run_queue(self) -> None:
        await self._list_jobs()
        await self.queue.run()

    async def _list_jobs(self) -> None:
        """Fill the cache with the training Jobs before the first pass (one LIST per watched
        namespace), so that after a restart no Model's pass reads its Jobs one by one. It also
        opens the API connection before the first event needs it (TLS costs a round trip)."""
        selector = f"{builders.LABEL_MANAGED_BY}={builders.MANAGED_BY}"
        paths = (
            [kube.path("batch/v1", "Job", namespace) for namespace in self.settings.namespaces]
            if self.settings.namespaces
            else ["/apis/batch/v1/jobs"]
        )
        try:
            for url_path in paths:
                for job in await self.context.kube.list(url_path, label_selector=selector):
                    self.context.bodies.put({"apiVersion": "batch/v1", "kind": "Job", **job})
        except kube.KubeError as error:
            _log.warning("the training Jobs could not be listed at start (read one by one): %s", error)

    async def _release_memory_when_idle(self) -> None:
        """After a burst of work, once the queue is idle, give the freed memory back."""
        released_at = 0
        while True:
            await asyncio.sleep(RELEASE_CHECK_SECONDS)
            if self.queue.done - released_at >= RELEASE_AFTER_PASSES and self.queue.idle():
                released_at = self.queue.done
                memory.release()

    async def stop(self) -> None:
        for task in (self._task, self._relax):
            if task is not None:
                task.cancel()
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


def register(registry: kopf.OperatorRegistry, operator: Operator) -> None:
    """Register the handlers on ``registry`` (nothing is registered at import)."""
    group, version = api.GROUP, api.VERSION
    managed = {builders.LABEL_MANAGED_BY: builders.MANAGED_BY}

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return credentials()

    @kopf.on.startup(registry=registry)
    async def startup(**_: Any) -> None:
        operator.start()
        _log.info("mlsteward operator started with %s", operator.settings)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await operator.stop()

    @kopf.on.event(group, version, "models", registry=registry)
    def model_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        operator.on_model(type, dict(body))

    @kopf.on.event(group, version, "deployments", registry=registry)
    def deployment_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        operator.on_deployment(type, dict(body))

    @kopf.on.event(group, version, "monitors", registry=registry)
    def monitor_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        operator.on_monitor(type, dict(body))

    @kopf.on.event(group, version, "approvals", registry=registry)
    def approval_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        operator.on_approval(type, dict(body))

    @kopf.on.event("batch", "v1", "jobs", labels=managed, registry=registry)
    def job_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        operator.on_child(type, dict(body))

    @kopf.on.event("apps", "v1", "deployments", labels=managed, registry=registry)
    def apps_deployment_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        operator.on_child(type, dict(body))
