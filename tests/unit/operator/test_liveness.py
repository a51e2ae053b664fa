"""The operator's liveness endpoint (a real HTTP server on 127.0.0.1): 200 while every watch and
the work queue run, 503 once one of them has stopped."""

from __future__ import annotations

import asyncio
import socket

import aiohttp

from mlsteward.operator import cli, handlers
from mlsteward.operator import settings as settings_module


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_liveness_answers_503_once_a_watch_or_the_queue_has_stopped() -> None:
    async def scenario() -> list[int]:
        operator = handlers.Operator(settings_module.Settings())
        port = _free_port()
        runner = await cli.serve_liveness(operator, f"http://127.0.0.1:{port}/healthz")
        assert runner is not None
        running = asyncio.create_task(asyncio.sleep(60))
        stopped = asyncio.create_task(asyncio.sleep(60))
        statuses = []
        try:
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{port}/healthz"
                async with session.get(url) as response:  # not started yet
                    statuses.append(response.status)
                operator._tasks = [running, stopped]
                async with session.get(url) as response:
                    statuses.append(response.status)
                stopped.cancel()
                await asyncio.sleep(0)
                async with session.get(url) as response:
                    statuses.append(response.status)
        finally:
            running.cancel()
            await runner.cleanup()
            await operator.context.kube.close()
        return statuses

    assert asyncio.run(scenario()) == [503, 200, 503]
