"""The operator's metrics: transitions counted once, and the exposition a real scrape reads."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from mlsteward.api import deployment as api_deployment
from mlsteward.operator import metrics, rollouts
from mlsteward.operator.builders import serving
from mlsteward.operator.queue import WorkQueue

STABLE = serving.Target(1, "1" * 64)
CANDIDATE = serving.Target(2, "2" * 64)


def _model(versions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "Model",
        "metadata": {"namespace": "credit", "name": "risk"},
        "status": {"versions": versions},
    }


def _deployment(rollout: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"namespace": "credit", "name": "risk"},
        "status": {"rollout": rollout} if rollout else {},
    }


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_finished_training_run_is_counted_once_however_often_its_status_is_read() -> None:
    counted = metrics.OperatorMetrics()
    before = _model([{"version": 1, "phase": "Succeeded"}, {"version": 2, "phase": "Training"}])
    written = {
        "versions": [
            {"version": 1, "phase": "Succeeded"},
            {"version": 2, "phase": "Failed", "reason": "GateFailed"},
        ]
    }

    counted.count_status(before, written)
    counted.count_status(_model(written["versions"]), written)  # the next pass: nothing new

    assert counted.training_runs == {
        (("namespace", "credit"), ("model", "risk"), ("outcome", "failed"), ("reason", "GateFailed")): 1.0
    }


def test_outcomes_are_succeeded_cached_or_failed_with_a_reason_from_the_closed_list() -> None:
    before = {"versions": [{"version": 1, "phase": "Training"}, {"version": 2, "phase": "Training"}]}
    after = {
        "versions": [
            {"version": 1, "phase": "Succeeded"},
            {"version": 2, "phase": "Failed", "reason": "not-a-reason"},
            {"version": 3, "phase": "Succeeded", "cached": True},
            {"version": 4, "phase": "Training"},
        ]
    }

    assert metrics.training_transitions(before, after) == [
        ("succeeded", ""),
        ("failed", "VersionFailed"),
        ("cached", ""),
    ]


def test_rollbacks_kill_switches_and_promotions_are_counted_when_the_rollout_ends() -> None:
    counted = metrics.OperatorMetrics()
    progressing = {"version": 2, "phase": "Progressing"}
    rolled_back = {"version": 2, "phase": "RolledBack"}
    promoted = {"version": 3, "phase": "Promoted"}
    killed = {"version": 3, "phase": "KillSwitch"}

    counted.count_status(_deployment(progressing), {"rollout": rolled_back})
    counted.count_status(_deployment(rolled_back), {"rollout": rolled_back, "replicas": 2})
    counted.count_status(_deployment({"version": 3, "phase": "Progressing"}), {"rollout": promoted})
    counted.count_status(_deployment(promoted), {"rollout": killed})
    counted.count_status(_deployment(killed), {"rollout": killed})

    where = (("namespace", "credit"), ("deployment", "risk"))
    assert counted.rollbacks == {
        (*where, ("reason", "RolledBack")): 1.0,
        (*where, ("reason", "KillSwitch")): 1.0,
    }
    assert counted.promotions == {where: 1.0}


def test_a_scrape_of_the_metrics_server_reads_every_family() -> None:
    counted = metrics.OperatorMetrics()
    counted.count_status(
        _model([{"version": 1, "phase": "Training"}]), {"versions": [{"version": 1, "phase": "Succeeded"}]}
    )
    counted.count_status(
        _deployment({"version": 2, "phase": "Shadow"}), {"rollout": {"version": 2, "phase": "RolledBack"}}
    )
    for seconds in (0.003, 0.2, 0.2, 40.0):
        counted.observe_reconcile("Model", seconds)
    counted.queue_depth = lambda: 7

    async def scrape() -> tuple[str, str]:
        runner = await metrics.serve(counted, "127.0.0.1", 0)
        assert runner is not None
        try:
            (port,) = metrics.bound_ports(runner)
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/metrics") as response,
            ):
                assert response.status == 200
                return response.headers["Content-Type"], await response.text()
        finally:
            await runner.cleanup()

    content_type, text = asyncio.run(scrape())
    samples = _samples(text)

    assert content_type.startswith("text/plain; version=0.0.4")
    assert (
        samples[
            (
                "mlsteward_operator_training_runs_total",
                (("model", "risk"), ("namespace", "credit"), ("outcome", "succeeded"), ("reason", "")),
            )
        ]
        == 1.0
    )
    assert (
        samples[
            (
                "mlsteward_rollout_rollbacks_total",
                (("deployment", "risk"), ("namespace", "credit"), ("reason", "RolledBack")),
            )
        ]
        == 1.0
    )
    assert (
        samples[
            ("mlsteward_operator_reconcile_duration_seconds_bucket", (("kind", "Model"), ("le", "0.005")))
        ]
        == 1.0
    )
    assert (
        samples[("mlsteward_operator_reconcile_duration_seconds_bucket", (("kind", "Model"), ("le", "0.25")))]
        == 3.0
    )
    assert (
        samples[("mlsteward_operator_reconcile_duration_seconds_bucket", (("kind", "Model"), ("le", "+Inf")))]
        == 4.0
    )
    assert samples[("mlsteward_operator_reconcile_duration_seconds_count", (("kind", "Model"),))] == 4.0
    assert (
        abs(samples[("mlsteward_operator_reconcile_duration_seconds_sum", (("kind", "Model"),))] - 40.403)
        < 1e-9
    )
    assert samples[("mlsteward_operator_queue_depth", ())] == 7.0
    assert "# TYPE mlsteward_rollout_promotions_total counter" in text


def test_a_taken_port_stops_the_metrics_server_not_the_caller() -> None:
    async def twice() -> web.AppRunner | None:
        first = await metrics.serve(metrics.OperatorMetrics(), "127.0.0.1", 0)
        assert first is not None
        try:
            (port,) = metrics.bound_ports(first)
            return await metrics.serve(metrics.OperatorMetrics(), "127.0.0.1", port)
        finally:
            await first.cleanup()

    assert asyncio.run(twice()) is None


def test_the_work_queue_reports_each_reconcile_time_and_its_depth() -> None:
    seen: list[tuple[str, float]] = []

    async def run() -> int:
        async def reconcile(key: tuple[str, str, str]) -> float | None:
            if key[2] == "bad":
                raise RuntimeError("fails on purpose")
            return None

        queue = WorkQueue(reconcile, workers=1)
        queue.observe = lambda kind, seconds: seen.append((kind, seconds))
        queue.add(("Model", "credit", "risk"))
        queue.add(("Deployment", "credit", "bad"))
        depth = queue.depth()
        task = asyncio.create_task(queue.run())
        while len(seen) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        return depth

    assert asyncio.run(run()) == 2
    assert sorted(kind for kind, _ in seen) == ["Deployment", "Model"]
    assert all(seconds >= 0 for _, seconds in seen)


def _page(stable_ok: int, canary_ok: int, canary_5xx: int = 0) -> str:
    return "\n".join(
        [
            "# TYPE mlsteward_serving_requests_total counter",
            f'mlsteward_serving_requests_total{{code="200",model="m",version="1"}} {stable_ok}',
            f'mlsteward_serving_requests_total{{code="200",model="m",version="2"}} {canary_ok}',
            f'mlsteward_serving_requests_total{{code="500",model="m",version="2"}} {canary_5xx}',
        ]
    )


def _passes(pages: Sequence[list[str] | None], **kw: Any) -> list[dict[str, Any] | None]:
    """The rollout after each pass of the real state machine, one pass every 10 seconds."""
    canary = api_deployment.Canary.model_validate(
        {"trafficPercent": 10, "steps": [50, 100], "analysis": {"interval": "10s", "minRequests": 10}}
    )
    rollout: dict[str, Any] | None = None
    stable, result = STABLE, []
    for n, page in enumerate(pages):
        kill = kw.get("kill") if n == kw.get("kill_at") else None
        out = rollouts.advance(
            deployment="risk",
            rollout=rollout,
            stable=stable,
            candidate=CANDIDATE,
            canary=canary,
            approval_required=False,
            approvals=[],
            requested_by=None,
            kill=kill,
            kill_target=STABLE if kill else None,
            served=[],
            pages=page,
            now=f"2026-11-23T10:00:{10 * n:02d}Z",
        )
        rollout, stable = out.rollout, out.stable
        result.append(rollout)
    return result


def _count(rollouts_seen: list[dict[str, Any] | None]) -> metrics.OperatorMetrics:
    counted = metrics.OperatorMetrics()
    before: dict[str, Any] | None = None
    for after in rollouts_seen:
        counted.count_status(_deployment(before), {"rollout": after})
        before = after
    return counted


def test_the_real_rollout_state_machine_counts_one_promotion_then_one_kill_switch() -> None:
    served = [[_page(100 * n, 100 * n)] for n in range(6)]
    seen = _passes([*served, None, None], kill=("t1", None), kill_at=6)

    counted = _count(seen)

    assert [r["phase"] for r in seen if r] == ["Progressing"] * 3 + ["Promoted"] * 3 + ["KillSwitch"] * 2
    where = (("namespace", "credit"), ("deployment", "risk"))
    assert counted.promotions == {where: 1.0}
    assert counted.rollbacks == {(*where, ("reason", "KillSwitch")): 1.0}


def test_the_real_rollout_state_machine_counts_one_rollback_of_a_failing_canary() -> None:
    seen = _passes([[_page(0, 0)]] + [[_page(100 * n, 10 * n, 90 * n)] for n in range(1, 5)])

    counted = _count(seen)

    assert [r["phase"] for r in seen if r] == ["Progressing"] + ["RolledBack"] * 4
    where = (("namespace", "credit"), ("deployment", "risk"))
    assert counted.rollbacks == {(*where, ("reason", "RolledBack")): 1.0} and counted.promotions == {}
