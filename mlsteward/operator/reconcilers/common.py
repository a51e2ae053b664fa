"""What every reconciler shares: the plan it returns and the context it runs in."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

from mlsteward.operator import cache, conditions, kube, metrics
from mlsteward.operator import settings as settings_module


@dataclasses.dataclass(frozen=True)
class Event:
    """A Kubernetes Event to emit about the parent once its status is written."""

    reason: conditions.Reason
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


@dataclasses.dataclass
class Plan:
    """What a reconcile pass writes: children to apply, children to delete, the status, Events."""

    status: dict[str, Any]
    apply: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    delete: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    events: list[Event] = dataclasses.field(default_factory=list)
    requeue_after: float | None = None
    annotate: dict[str, str | None] = dataclasses.field(default_factory=dict)
    """Annotations to set on the parent after its status (None removes one): requests to
    itself, such as a scheduled retrain, that go through the same path as a person's."""
    patches: list[tuple[dict[str, Any], dict[str, Any]]] = dataclasses.field(default_factory=list)
    """(object reference, merge patch) for other objects, written after the status: a
    Monitor's retraining request on its Model."""


@dataclasses.dataclass
class Context:
    """The long-lived things a reconcile pass uses."""

    kube: kube.Client
    settings: settings_module.Settings
    metrics: metrics.OperatorMetrics = dataclasses.field(default_factory=metrics.OperatorMetrics)
    bodies: cache.BodyCache = dataclasses.field(init=False)
    """Models and training Jobs as last seen (see cache.py for why a pass may start from them)."""
    background: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)
    defer: Callable[[tuple[str, str, str], Callable[[], Awaitable[None]]], None] | None = None
    """Runs a status write later, once the work queue is idle (see queue.WorkQueue.defer);
    None: write at once."""

    def __post_init__(self) -> None:
        # Half the shortest periodic pass: the training poll and the resync always read afresh.
        shortest = min(self.settings.training_poll_seconds, self.settings.resync_seconds)
        self.bodies = cache.BodyCache(max_age=shortest / 2)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run best-effort work (Events) without holding a reconcile worker; failures are logged."""
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.warning("an Event could not be posted: %s", task.exception())


FIELD_MANAGER = "mlsteward-operator"
_log = logging.getLogger("mlsteward.operator")


def ready_transition(
    previous: list[conditions.Condition], desired: list[conditions.Condition]
) -> list[Event]:
    """An Event when the Ready condition changes status (the state change users watch)."""
    before = conditions.find(previous, conditions.READY)
    now = conditions.find(desired, conditions.READY)
    if now is None or (before is not None and before.get("status") == now["status"]):
        return []
    if before is None and now["status"] != "True":
        return []  # a new object that is not ready yet: no news
    kind: Literal["Normal", "Warning"] = "Normal" if now["status"] == "True" else "Warning"
    return [Event(conditions.Reason(now["reason"]), f"Ready={now['status']}: {now['message']}", kind)]


def status_changed(body: dict[str, Any], status: dict[str, Any]) -> bool:
    """True when writing ``status`` would change any field of the object's status."""
    current = body.get("status") or {}
    return any(current.get(key) != value for key, value in status.items())


async def write(context: Context, body: dict[str, Any], plan: Plan, now: str) -> dict[str, Any] | None:
    """Apply children, then delete stale ones, then write status, then emit Events; returns the
    object as the status write left it (None when the status did not change).

    Children first: a crash after the apply and before the status write leaves a child that
    the next pass adopts (deterministic names), never a status that names a missing child.
    Events go last and in the background: they are best effort (Events expire anyway).
    """
    for child in plan.apply:
        await context.kube.apply(child, FIELD_MANAGER)
    for child in plan.delete:
        await context.kube.delete(child)
    written = None
    if status_changed(body, plan.status):
        written = await context.kube.patch_status(body, plan.status)
        context.metrics.count_status(body, plan.status)  # once: the next pass reads this status
    if plan.annotate:
        await context.kube.merge_patch(kube.path_of(body), {"metadata": {"annotations": plan.annotate}})
    for target, patch in plan.patches:
        try:
            await context.kube.merge_patch(kube.path_of(target), patch)
        except kube.NotFoundError:
            _log.warning("%s %s is gone; its patch was dropped", target["kind"], target["metadata"]["name"])
    for event in plan.events:
        context.spawn(context.kube.emit_event(body, event.reason, event.message, event.type, now))
    return written
