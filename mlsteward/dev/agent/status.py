"""Pure builders of pod status: phase, conditions and container statuses.

No I/O, no clock: the caller passes the time and what it observed. The phase follows the
kubelet's rules closely enough for the real controllers (Deployment readiness, Job
success and failure, ``kubectl wait --for=condition=Ready``).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

Obj = dict[str, Any]

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
TERMINAL = {SUCCEEDED, FAILED}


def timestamp(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Terminated:
    """How one run of a container ended."""

    exit_code: int
    reason: str
    started_at: datetime.datetime
    finished_at: datetime.datetime
    message: str = ""
    container_id: str = ""

    def to_dict(self) -> Obj:
        state: Obj = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": timestamp(self.started_at),
            "finishedAt": timestamp(self.finished_at),
        }
        if self.exit_code > 128:
            state["signal"] = self.exit_code - 128
        if self.message:
            state["message"] = self.message
        if self.container_id:
            state["containerID"] = self.container_id
        return state


@dataclasses.dataclass(frozen=True)
class ContainerView:
    """What the agent knows about one container, in the shape of its status."""

    name: str
    image: str
    restart_count: int = 0
    running_since: datetime.datetime | None = None
    terminated: Terminated | None = None
    last: Terminated | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    ready: bool = False
    started: bool = False
    container_id: str = ""

    @property
    def succeeded(self) -> bool:
        return self.terminated is not None and self.terminated.exit_code == 0

    def to_dict(self) -> Obj:
        state: Obj
        if self.running_since is not None:
            state = {"running": {"startedAt": timestamp(self.running_since)}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated.to_dict()}
        else:
            state = {"waiting": {"reason": self.waiting_reason}}
            if self.waiting_message:
                state["waiting"]["message"] = self.waiting_message
        result: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last.to_dict()} if self.last else {},
        }
        if self.container_id:
            result["containerID"] = self.container_id
        return result


def phase(
    restart_policy: str,
    init_failed: bool,
    initialized: bool,
    containers: Sequence[ContainerView],
    deleted: bool = False,
) -> str:
    """The pod phase by the kubelet's rules; ``deleted`` pods end Succeeded or Failed."""
    if init_failed:
        return FAILED
    running = sum(1 for c in containers if c.running_since is not None)
    stopped = sum(1 for c in containers if c.terminated is not None or (c.running_since is None and c.last))
    succeeded = sum(1 for c in containers if c.succeeded)
    waiting = len(containers) - running - stopped
    if deleted and running == 0:
        return SUCCEEDED if containers and succeeded == len(containers) else FAILED
    if not initialized or waiting > 0:
        return PENDING
    if running > 0:
        return RUNNING
    if restart_policy == "Always":
        return RUNNING
    if stopped == succeeded:
        return SUCCEEDED
    if restart_policy == "Never":
        return FAILED
    return RUNNING


def _condition(kind: str, ok: bool, now: str, previous: Obj, *, reason: str = "", message: str = "") -> Obj:
    status = "True" if ok else "False"
    old = previous.get(kind)
    since = old["lastTransitionTime"] if old and old.get("status") == status else now
    condition: Obj = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def pod_status(
    *,
    existing: Obj,
    pod_phase: str,
    init: Sequence[ContainerView],
    containers: Sequence[ContainerView],
    initialized: bool,
    sandbox_ready: bool,
    readiness_gates: Sequence[str],
    pod_ip: str | None,
    host_ip: str,
    start_time: datetime.datetime,
    now: datetime.datetime,
    reason: str = "",
    message: str = "",
) -> Obj:
    """The complete ``status`` to write, keeping the scheduler's condition and old transition times."""
    stamp = timestamp(now)
    previous = {c["type"]: c for c in existing.get("conditions") or []}
    terminal = pod_phase in TERMINAL
    unready = [c.name for c in containers if not c.ready]
    unfinished = [c.name for c in init if not (c.succeeded or c.started)]
    if terminal:
        ready_reason, ready_message = "PodCompleted", ""
    elif unready:
        ready_reason, ready_message = (
            "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]",
        )
    else:
        ready_reason, ready_message = "", ""
    containers_ready = not terminal and not unready
    gates_open = all(previous.get(g, {}).get("status") == "True" for g in readiness_gates)
    init_reason = (
        "PodCompleted" if terminal and initialized else ("" if initialized else "ContainersNotInitialized")
    )
    init_message = "" if initialized else f"containers with incomplete status: [{' '.join(unfinished)}]"
    conditions = [
        _condition("PodReadyToStartContainers", sandbox_ready and not terminal, stamp, previous),
        _condition("Initialized", initialized, stamp, previous, reason=init_reason, message=init_message),
        _condition(
            "Ready",
            containers_ready and gates_open,
            stamp,
            previous,
            reason=ready_reason,
            message=ready_message,
        ),
        _condition(
            "ContainersReady", containers_ready, stamp, previous, reason=ready_reason, message=ready_message
        ),
    ]
    ours = {c["type"] for c in conditions}
    conditions += [c for kind, c in previous.items() if kind not in ours]
    status: Obj = {
        "phase": pod_phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": timestamp(start_time),
        "containerStatuses": [c.to_dict() for c in containers],
    }
    if init:
        status["initContainerStatuses"] = [c.to_dict() for c in init]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if existing.get("qosClass"):
        status["qosClass"] = existing["qosClass"]
    if reason:
        status["reason"] = reason
        status["message"] = message
    return status


def parse_time(text: str | None, default: datetime.datetime) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text) if text else default


def terminated_from(state: Obj, now: datetime.datetime) -> Terminated:
    """A ``state.terminated`` dict read back (from a status an earlier agent wrote)."""
    return Terminated(
        int(state.get("exitCode", 0)),
        str(state.get("reason", "")),
        parse_time(state.get("startedAt"), now),
        parse_time(state.get("finishedAt"), now),
        str(state.get("message", "")),
        str(state.get("containerID", "")),
    )
