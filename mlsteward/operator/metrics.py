"""The operator's own Prometheus metrics: training runs, rollbacks, promotions, reconcile time, queue.

The operator extra does not depend on prometheus_client, and five families do not need it: this
module keeps the counts in plain dictionaries and writes the text exposition format (0.0.4)
itself. One :class:`OperatorMetrics` per running operator (no global registry); a restart starts
every counter at zero again, which Prometheus's ``increase()`` and ``rate()`` treat as a reset.

Counters count transitions, not passes: :meth:`OperatorMetrics.count_status` compares the status
a pass read with the status it has just written, so a transition is counted once, by the pass
that wrote it, and a later pass over the same state counts nothing.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from mlsteward.operator import conditions
from mlsteward.operator.conditions import Reason

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Rollout phases that end a rollout, and the counter each one adds to.
_ROLLBACK_PHASES = {"RolledBack": Reason.ROLLED_BACK, "KillSwitch": Reason.KILL_SWITCH}
_log = logging.getLogger("mlsteward.operator.metrics")
Labels = tuple[tuple[str, str], ...]


def training_transitions(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(outcome, reason) for every version that finished between two Model statuses.

    A version counts when it was Training before (or is new: a cache hit, or an adopted Job
    that finished in the same pass) and is Succeeded or Failed now. The reason of a failure is
    the version's reason from the closed list (``VersionFailed`` for anything else); successes
    carry an empty reason.
    """
    old = {v.get("version"): v for v in before.get("versions") or []}
    result = []
    for version in after.get("versions") or []:
        phase = version.get("phase")
        previous = old.get(version.get("version"))
        if phase not in {"Succeeded", "Failed"}:
            continue
        if previous is not None and previous.get("phase") != "Training":
            continue
        if phase == "Failed":
            reason = conditions.to_reason(version.get("reason"), Reason.VERSION_FAILED)
            result.append(("failed", str(reason)))
        elif version.get("cached"):  # by the operator (new) or by the Job (was Training)
            result.append(("cached", ""))
        else:
            result.append(("succeeded", ""))
    return result


def rollout_transition(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, str] | None:
    """("rollback", reason) or ("promotion", "") when a Deployment's rollout has just ended."""
    old, new = before.get("rollout") or {}, after.get("rollout") or {}
    phase = new.get("phase")
    if phase not in {*_ROLLBACK_PHASES, "Promoted"}:
        return None
    if old.get("phase") == phase and old.get("version") == new.get("version"):
        return None
    if phase == "Promoted":
        return ("promotion", "")
    return ("rollback", str(_ROLLBACK_PHASES[phase]))


class OperatorMetrics:
    """Usage::

    metrics = OperatorMetrics()
    metrics.count_status(body, status)  # right after the status write
    metrics.observe_reconcile("Model", 0.012)
    metrics.queue_depth = lambda: 3
    text = metrics.render()
    """

    def __init__(self) -> None:
        self.training_runs: dict[Labels, float] = {}
        self.rollbacks: dict[Labels, float] = {}
        self.promotions: dict[Labels, float] = {}
        self._durations: dict[str, tuple[list[int], list[float]]] = {}
        self.queue_depth: Callable[[], int] = lambda: 0
        """Read at scrape time: the number of keys waiting for a worker."""

    def count_status(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """Count what writing ``status`` over ``body``'s status finished (Models and Deployments)."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        before = body.get("status") or {}
        if body.get("kind") == "Model" and "versions" in status:
            for outcome, reason in training_transitions(before, status):
                run: Labels = (
                    ("namespace", namespace),
                    ("model", name),
                    ("outcome", outcome),
                    ("reason", reason),
                )
                self.training_runs[run] = self.training_runs.get(run, 0.0) + 1
        elif body.get("kind") == "Deployment" and "rollout" in status:
            ended = rollout_transition(before, status)
            if ended is not None and ended[0] == "rollback":
                rollback: Labels = (("namespace", namespace), ("deployment", name), ("reason", ended[1]))
                self.rollbacks[rollback] = self.rollbacks.get(rollback, 0.0) + 1
            elif ended is not None:
                promotion: Labels = (("namespace", namespace), ("deployment", name))
                self.promotions[promotion] = self.promotions.get(promotion, 0.0) + 1

    def observe_reconcile(self, kind: str, seconds: float) -> None:
        """One reconcile pass of ``kind`` took ``seconds`` (failed passes too)."""
        counts, sums = self._durations.setdefault(kind, ([0] * (len(DURATION_BUCKETS) + 1), [0.0]))
        counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        sums[0] += seconds

    def render(self) -> str:
        """The text exposition of every family (families with no samples yet still get HELP/TYPE)."""
        lines: list[str] = []
        _counter(
            lines,
            "mlsteward_operator_training_runs_total",
            "Training runs finished, by outcome (succeeded, failed, cached) and failure reason.",
            self.training_runs,
        )
        _counter(
            lines,
            "mlsteward_rollout_rollbacks_total",
            "Canary rollouts ended by an automatic rollback (RolledBack) or the kill switch (KillSwitch).",
            self.rollbacks,
        )
        _counter(
            lines,
            "mlsteward_rollout_promotions_total",
            "Canary rollouts that passed every step and were promoted.",
            self.promotions,
        )
        name = "mlsteward_operator_reconcile_duration_seconds"
        lines += [f"# HELP {name} Time of one reconcile pass, by kind.", f"# TYPE {name} histogram"]
        for kind, (counts, sums) in sorted(self._durations.items()):
            running = 0
            for bound, count in zip((*DURATION_BUCKETS, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f"{name}_bucket{_labels((('kind', kind), ('le', le)))} {running}")
            lines.append(f"{name}_sum{_labels((('kind', kind),))} {sums[0]!r}")
            lines.append(f"{name}_count{_labels((('kind', kind),))} {running}")
        name = "mlsteward_operator_queue_depth"
        lines += [
            f"# HELP {name} Objects waiting for a reconcile worker.",
            f"# TYPE {name} gauge",
            f"{name} {self.queue_depth()}",
        ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels) + "}"


def _counter(lines: list[str], name: str, text: str, samples: Mapping[Labels, float]) -> None:
    lines += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
    lines += [f"{name}{_labels(labels)} {value!r}" for labels, value in sorted(samples.items())]


async def serve(metrics: OperatorMetrics, host: str, port: int) -> web.AppRunner | None:
    """Serve ``GET /metrics`` on ``host:port``; None (logged) when the port cannot be bound.

    A port that is taken stops the metrics, not the operator: reconciling matters more than
    being scraped, and Prometheus reports the target as down.
    """

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        _log.error("metrics server not started on %s:%d: %s", host, port, error)
        await runner.cleanup()
        return None
    return runner


def bound_ports(runner: web.AppRunner) -> Sequence[int]:
    """The ports a started server listens on (port 0 asks for a free one)."""
    ports = []
    for site in runner.sites:
        server = getattr(site, "_server", None)
        for sock in getattr(server, "sockets", None) or []:
            ports.append(int(sock.getsockname()[1]))
    return ports
