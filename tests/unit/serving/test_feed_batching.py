"""When the monitor feed sends (contracts §4): a group goes as soon as it holds ``batch_rows``
rows, a smaller one only after the flush interval or at shutdown, never a POST per round trip.

The receiving end is a real HTTP/1.1 listener on 127.0.0.1 in the test's event loop that decodes
every body with the monitor's own decoder.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from mlsteward.monitoring import batches
from mlsteward.serving import feed, metrics


class _Receiver:
    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            self.documents.append(batches.decode_binary(await reader.readexactly(length)))
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()


def _offer(monitor: feed.MonitorFeed, rid: str, rows: int, route: str = "champion") -> None:
    block = np.arange(2 * rows, dtype=np.float32).reshape(2, rows)
    monitor.offer(
        version="1",
        digest="d" * 64,
        route=route,
        request_id=rid,
        rows=rows,
        columns={"x": block[0], "y": block[1]},
        block=block,
        outputs={"label": np.ones(rows, np.int64), "probabilities": np.full((rows, 2), 0.5, np.float32)},
        positive=1,
        metadata={},
    )


async def _scenario() -> tuple[list[list[str]], list[list[str]], list[list[str]], float]:
    receiver = _Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    registry = CollectorRegistry()
    serving_metrics = metrics.ServingMetrics(registry)
    monitor = feed.MonitorFeed(
        f"http://127.0.0.1:{port}",
        queue_rows=1000,
        batch_rows=4,
        flush_interval_s=30.0,
        timeout_s=5.0,
        metrics=serving_metrics,
    )
    task = asyncio.create_task(monitor.run())
    _offer(monitor, "a", 1)
    _offer(monitor, "b", 2)
    await asyncio.sleep(0.3)
    before_full = [batches.row_ids(d) or [] for d in receiver.documents]
    _offer(monitor, "c", 1)  # the group reaches 4 rows: sent now, not after 30 s
    _offer(monitor, "s", 1, route="shadow")  # another group, 1 row: waits
    for _ in range(50):
        if receiver.documents:
            break
        await asyncio.sleep(0.05)
    when_full = [batches.row_ids(d) or [] for d in receiver.documents]
    _offer(monitor, "d", 3)
    task.cancel()  # shutdown sends what is left, however small
    with contextlib.suppress(asyncio.CancelledError):
        await task
    server.close()
    spent = registry.get_sample_value("mlsteward_serving_monitor_feed_seconds_total") or 0.0
    return before_full, when_full, [batches.row_ids(d) or [] for d in receiver.documents], spent


def test_full_groups_go_at_once_the_rest_at_the_interval_or_shutdown() -> None:
    before_full, when_full, at_the_end, spent = asyncio.run(_scenario())
    assert before_full == []
    assert when_full == [["a", "b:0", "b:1", "c"]]
    assert sorted(at_the_end[1:]) == [["d:0", "d:1", "d:2"], ["s"]]
    assert 0.0 < spent < 1.0  # the event-loop time of queueing, building and writing the batches
