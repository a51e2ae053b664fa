"""The body cache a pass may start from, and the deferred status writes (creations first)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mlsteward.operator import cache
from mlsteward.operator.queue import QUIET_BEFORE_DEFERRED, Key, WorkQueue

Json = dict[str, Any]


def _model(version: str, **status: Any) -> Json:
    return {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Model",
        "metadata": {
            "name": "credit",
            "namespace": "ns",
            "uid": "u1",
            "resourceVersion": version,
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"task": "classification"},
        "status": status,
    }


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_serves_the_newest_body_without_managed_fields_until_it_is_too_old() -> None:
    clock = Clock()
    bodies = cache.BodyCache(max_age=15.0, clock=clock)
    assert bodies.get("Model", "ns", "credit") is None
    bodies.put(_model("41"))
    served = bodies.get("Model", "ns", "credit")
    assert served is not None and served["metadata"]["resourceVersion"] == "41"
    assert "managedFields" not in served["metadata"] and served["spec"] == {"task": "classification"}
    clock.now += 15.5
    assert bodies.get("Model", "ns", "credit") is None, "a periodic pass must read afresh"
    bodies.drop("Model", "ns", "credit")
    assert len(bodies) == 0


def test_the_event_of_a_version_our_own_write_replaced_does_not_win_over_the_write() -> None:
    bodies = cache.BodyCache(max_age=15.0)
    bodies.put(_model("41"))
    bodies.wrote(_model("42", phase="Training"), superseded="41")
    bodies.put(_model("41"))  # the watch delivers the older version late
    assert (bodies.get("Model", "ns", "credit") or {})["status"] == {"phase": "Training"}
    bodies.put(_model("43", phase="Ready"))  # anything newer still wins
    assert (bodies.get("Model", "ns", "credit") or {})["status"] == {"phase": "Ready"}


def test_a_cached_job_keeps_only_what_the_model_reconciler_reads() -> None:
    job: Json = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "credit-v1",
            "namespace": "ns",
            "uid": "j1",
            "resourceVersion": "7",
            "labels": {"mlsteward.io/version": "1"},
            "annotations": {"mlsteward.io/generation": "1"},
            "ownerReferences": [{"uid": "u1", "controller": True}],
            "creationTimestamp": "2026-12-07T00:00:00Z",
            "managedFields": [{"manager": "kube-controller-manager"}],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "train", "image": "x" * 4000}]}}},
        "status": {"active": 1, "conditions": [{"type": "Complete", "status": "True"}]},
    }
    bodies = cache.BodyCache(max_age=15.0)
    bodies.put(job)
    kept = bodies.get("Job", "ns", "credit-v1")
    assert kept is not None and "spec" not in kept and "managedFields" not in kept["metadata"]
    assert kept["status"] == {"conditions": [{"type": "Complete", "status": "True"}]}
    assert kept["metadata"]["labels"] == job["metadata"]["labels"]
    assert kept["metadata"]["ownerReferences"] == job["metadata"]["ownerReferences"]


def test_deferred_writes_wait_for_a_quiet_queue_and_a_failed_one_reconciles_afresh() -> None:
    order: list[str] = []
    gate = asyncio.Event()
    times: dict[str, float] = {}

    async def reconcile(key: Key) -> float | None:
        order.append(f"pass {key[2]}")
        times[f"pass {key[2]}"] = time.monotonic()
        if key[2] == "busy":
            await gate.wait()
        return None

    async def scenario() -> None:
        queue = WorkQueue(reconcile, workers=2)
        task = asyncio.create_task(queue.run())
        queue.add(("Model", "ns", "busy"))
        await asyncio.sleep(0.05)

        async def write() -> None:
            order.append("status a")
            times["status a"] = time.monotonic()

        async def failing() -> None:
            order.append("status b")
            raise RuntimeError("409: the Model changed")

        queue.defer(("Model", "ns", "a"), write)
        queue.defer(("Model", "ns", "b"), failing)
        await asyncio.sleep(0.3)
        order.append("burst over")
        gate.set()
        await asyncio.sleep(0.05)
        queue.add(("Model", "ns", "late"))  # one more object of the burst: quiet starts again
        await asyncio.sleep(QUIET_BEFORE_DEFERRED + 0.4)
        task.cancel()

    asyncio.run(scenario())
    assert order == ["pass busy", "burst over", "pass late", "status a", "status b", "pass b"]
    assert times["status a"] - times["pass late"] >= QUIET_BEFORE_DEFERRED - 0.01
