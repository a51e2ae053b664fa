"""The canary rollout of a Deployment as a pure state machine over ``status.rollout``.

One call of :func:`advance` per reconcile pass: it takes the stored rollout, the candidate
version, the Approvals, the kill-switch request and the serving pods' counters, and returns
the next rollout, what the routing file carries, history records and Events. No I/O, no clock.

    (none) -> WaitingForApproval (when required) -> [Shadow] -> Progressing (step 1..n)
    any active phase -> RolledBack (analysis Failed) | KillSwitch (mlsteward rollback)
    Progressing <-> Inconclusive (too little traffic: paused at the step, never promoted)
    last step Passed -> Promoted (the canary becomes the stable version)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

from mlsteward.api import deployment as api_deployment
from mlsteward.operator import analysis, history, specs
from mlsteward.operator.builders import serving
from mlsteward.operator.conditions import Reason

ACTIVE = frozenset({"WaitingForApproval", "Shadow", "Progressing", "Inconclusive"})
ROLLBACK_ANNOTATION = "mlsteward.io/rollback"
ROLLBACK_VERSION_ANNOTATION = "mlsteward.io/rollback-version"
Json = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Note:
    """An Event to emit (kept free of the reconciler's types so this module stays pure)."""

    reason: Reason
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


@dataclasses.dataclass
class Outcome:
    """What one pass decided."""

    rollout: Json | None
    stable: serving.Target
    canary: serving.Target | None = None
    share: int = 0
    mode: str = "split"
    history: list[Json] = dataclasses.field(default_factory=list)
    rejected: list[int] = dataclasses.field(default_factory=list)
    kill_switch: str | None = None
    notes: list[Note] = dataclasses.field(default_factory=list)
    requeue_after: float | None = None


def steps(canary: api_deployment.Canary) -> list[tuple[str, int]]:
    """(mode, share) of every step: a shadow step first in shadow mode, then rising shares."""
    plan: list[tuple[str, int]] = [("shadow", 0)] if canary.mode == "shadow" else []
    last = 0
    for share in [canary.traffic_percent, *canary.steps]:
        if share > last:
            plan.append(("split", share))
            last = share
    if not plan:
        plan.append(("split", 100))
    return plan


def matching_approval(approvals: Sequence[Json], deployment: str, candidate: serving.Target) -> Json | None:
    """The oldest Approval of exactly this version and artifact on this Deployment."""
    found = [
        a
        for a in approvals
        if (a.get("spec") or {}).get("deployment") == deployment
        and (a.get("spec") or {}).get("version") == candidate.version
        and (a.get("spec") or {}).get("digest") == candidate.digest
    ]
    found.sort(key=lambda a: (a["metadata"].get("creationTimestamp", ""), a["metadata"]["name"]))
    return found[0] if found else None


def _elapsed(since: str | None, now: str) -> float:
    if not since:
        return float("inf")
    return (history.parse_time(now) - history.parse_time(since)).total_seconds()


def _enter_step(
    rollout: Json, plan: list[tuple[str, int]], number: int, counters: Json | None, now: str
) -> Note:
    mode, share = plan[number - 1]
    rollout.update(
        step=number,
        steps=len(plan),
        mode=mode,
        trafficPercent=share,
        phase="Shadow" if mode == "shadow" else "Progressing",
        stepStartedAt=now,
        baseline=counters,
    )
    what = "shadows the stable version" if mode == "shadow" else f"takes {share}% of requests"
    rollout["message"] = f"step {number}/{len(plan)}: version {rollout['version']} {what}"
    return Note(Reason.STEP_STARTED, rollout["message"])


def advance(
    *,
    deployment: str,
    rollout: Json | None,
    stable: serving.Target,
    candidate: serving.Target | None,
    canary: api_deployment.Canary,
    approval_required: bool,
    approvals: Sequence[Json],
    requested_by: str | None,
    kill: tuple[str, int | None] | None,
    kill_target: serving.Target | None,
    served: Sequence[Json],
    pages: Sequence[str] | None,
    now: str,
    summaries: Sequence[Json] | None = None,
) -> Outcome:
    """The next state. ``kill`` is a new kill-switch request (token, version) not yet acted on,
    ``kill_target`` the promotable version it resolves to (default: the version served before
    the current one), ``served`` the history so far, ``pages`` the pods' /metrics (None: none
    read), ``summaries`` the pods' monitor /summary documents (None: the Deployment has no
    Monitor)."""
    current = dict(rollout) if rollout else None
    active = current is not None and current.get("phase") in ACTIVE
    out = Outcome(rollout=current, stable=stable)

    def measure(version: int) -> Json | None:
        if pages is None:
            return None
        return analysis.counters(pages, stable=stable.version, canary=version)

    # 1. The kill switch, before anything else.
    if kill is not None:
        token, _ = kill
        out.kill_switch = token
        if current is not None and active:
            out.rejected.append(int(current["version"]))
            current.update(
                phase="KillSwitch", trafficPercent=0, message=f"stopped by mlsteward rollback ({token})"
            )
            out.history.append(
                {
                    "version": stable.version,
                    "digest": stable.digest,
                    "action": "killSwitch",
                    "reason": f"kill switch during the rollout of version {current['version']}: all traffic "
                    f"to version {stable.version}",
                    "approvedBy": None,
                }
            )
            out.notes.append(
                Note(
                    Reason.KILL_SWITCH,
                    current["message"] + f"; version {stable.version} serves all traffic",
                    "Warning",
                )
            )
        elif kill_target is not None and kill_target.version != stable.version:
            out.rejected.append(stable.version)
            out.rollout = {
                "version": stable.version,
                "digest": stable.digest,
                "stableVersion": kill_target.version,
                "phase": "KillSwitch",
                "step": 0,
                "steps": 0,
                "trafficPercent": 0,
                "mode": "split",
                "message": f"stopped by mlsteward rollback ({token}): version {kill_target.version} restored",
            }
            out.stable = kill_target
            out.history.append(
                {
                    "version": kill_target.version,
                    "digest": kill_target.digest,
                    "action": "killSwitch",
                    "reason": f"kill switch: version {stable.version} withdrawn, "
                    f"version {kill_target.version} restored",
                    "approvedBy": None,
                }
            )
            out.notes.append(Note(Reason.KILL_SWITCH, out.rollout["message"], "Warning"))
        else:
            out.notes.append(
                Note(
                    Reason.KILL_SWITCH,
                    f"mlsteward rollback ({token}): version {stable.version} already serves all traffic",
                )
            )
        return out

    # 2. A candidate that differs from the one in flight starts a new rollout.
    if candidate is None:
        if current is not None and active:
            current.update(
                phase="RolledBack", trafficPercent=0, message="the candidate version is no longer available"
            )
            out.notes.append(Note(Reason.ROLLED_BACK, current["message"], "Warning"))
        return out
    if current is None or int(current.get("version", 0)) != candidate.version:
        current = {
            "version": candidate.version,
            "digest": candidate.digest,
            "stableVersion": stable.version,
            "phase": "WaitingForApproval",
            "step": 0,
            "steps": len(steps(canary)),
            "trafficPercent": 0,
            "mode": "split",
            "message": "",
            **({"requestedBy": requested_by} if requested_by else {}),
        }
        out.rollout = current
        out.notes.append(
            Note(
                Reason.ROLLOUT_STARTED,
                f"rollout of version {candidate.version} against version {stable.version}",
            )
        )
        if approval_required:
            current["message"] = (
                f"waiting for an Approval of version {candidate.version} (sha256:{candidate.digest}): "
                f"mlsteward approve {deployment} --version {candidate.version}"
            )
            out.notes.append(Note(Reason.WAITING_FOR_APPROVAL, current["message"]))
        else:
            out.notes.append(_enter_step(current, steps(canary), 1, measure(candidate.version), now))
    elif current.get("phase") not in ACTIVE:
        return out  # finished with this candidate (promoted, rolled back or stopped)
    plan = steps(canary)

    # 3. Approval.
    if current["phase"] == "WaitingForApproval":
        found = matching_approval(approvals, deployment, candidate)
        if found is None:
            out.requeue_after = None
            return out
        approver = str(found["spec"].get("approvedBy", ""))
        if current.get("requestedBy") and approver == current.get("requestedBy"):
            text = (
                f"Approval {found['metadata']['name']} refused: {approver} requested version "
                f"{candidate.version} and cannot approve it"
            )
            if current.get("message") != text:
                current["message"] = text
                out.notes.append(Note(Reason.SELF_APPROVAL_REFUSED, text, "Warning"))
            return out
        current.update(approvedBy=approver, approval=found["metadata"]["name"])
        out.notes.append(
            Note(
                Reason.APPROVED,
                f"version {candidate.version} approved by {approver} (Approval {found['metadata']['name']})",
            )
        )
        out.notes.append(_enter_step(current, plan, 1, measure(candidate.version), now))

    # 4. Analysis at the end of each interval.
    interval = max(specs.duration_seconds(canary.analysis.interval), 0.5)
    waited = _elapsed(current.get("stepStartedAt"), now)
    if waited >= interval and current["phase"] in {"Shadow", "Progressing", "Inconclusive"}:
        counters = measure(candidate.version)
        baseline = current.get("baseline")
        number = int(current["step"])
        if counters is None or counters["pods"] == 0 or baseline is None:
            verdict: Json = {
                "verdict": "Inconclusive",
                "at": now,
                "step": number,
                "message": "no serving pod answered /metrics: no analysis this interval",
            }
            if counters is not None and counters["pods"] > 0:
                current["baseline"] = counters
        else:
            verdict = analysis.judge(
                baseline,
                counters,
                canary.analysis,
                mode=current["mode"],
                step=number,
                now=now,
                stable=stable.version,
                canary=candidate.version,
                summaries=summaries,
            )
        current["lastAnalysis"] = verdict
        if verdict["verdict"] == "Failed":
            out.rejected.append(candidate.version)
            current.update(
                phase="RolledBack",
                trafficPercent=0,
                message=f"analysis failed at step {number}: {verdict['message']}",
            )
            out.history.append(
                {
                    "version": stable.version,
                    "digest": stable.digest,
                    "action": "rolledBack",
                    "reason": f"version {candidate.version} failed its analysis at step {number}: "
                    f"{verdict['message']}",
                    "approvedBy": None,
                }
            )
            out.notes.append(
                Note(
                    Reason.ROLLED_BACK,
                    f"version {candidate.version} rolled back: {current['message']}",
                    "Warning",
                )
            )
        elif verdict["verdict"] == "Inconclusive":
            if counters is not None and baseline is not None and analysis.went_back(baseline, counters):
                current["baseline"] = counters  # measure the restarted pods from now on
            if current["phase"] != "Inconclusive":
                out.notes.append(
                    Note(Reason.ANALYSIS_INCONCLUSIVE, f"step {number} paused: {verdict['message']}")
                )
            current.update(
                phase="Inconclusive",
                stepStartedAt=now,
                message=f"paused at step {number}: {verdict['message']}",
            )
        elif number >= len(plan):
            current.update(
                phase="Promoted",
                trafficPercent=100,
                stableVersion=candidate.version,
                message=f"version {candidate.version} passed all {len(plan)} steps and was promoted",
            )
            out.stable = candidate
            out.history.append(
                {
                    "version": candidate.version,
                    "digest": candidate.digest,
                    "action": "promoted",
                    "reason": f"passed all {len(plan)} canary steps; last analysis: {verdict['message']}",
                    "approvedBy": current.get("approvedBy"),
                }
            )
            out.notes.append(Note(Reason.PROMOTED, current["message"]))
        else:
            out.notes.append(Note(Reason.ANALYSIS_PASSED, f"step {number}: {verdict['message']}"))
            out.notes.append(_enter_step(current, plan, number + 1, counters, now))
        waited = 0.0
    if current["phase"] in {"Shadow", "Progressing", "Inconclusive"}:
        out.canary = candidate
        out.mode, out.share = current["mode"], int(current["trafficPercent"])
        out.requeue_after = max(interval - waited, 0.5)
    return out


def stamp(served: Sequence[Json], records: Sequence[Json], now: str) -> list[Json]:
    """``served`` with ``records`` appended through the hash chain at time ``now``."""
    result = list(served)
    for record in records:
        result = history.append(
            result,
            version=int(record["version"]),
            digest=str(record["digest"]),
            at=now,
            action=str(record["action"]),
            reason=str(record.get("reason", "")),
            approved_by=record.get("approvedBy"),
        )
    return result
