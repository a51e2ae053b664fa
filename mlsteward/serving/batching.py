"""Dynamic batching: requests that arrive while the runtime is busy are scored together in one call.

One :class:`Batcher` per loaded model. ``submit`` queues a request's feeds (the runtime's input
arrays, :meth:`~mlsteward.serving.runtime.Runtime.feeds`) and awaits its slice of the outputs. A
single drain task takes everything queued (up to ``max_batch_size`` rows, and always at least one
request, however large), concatenates each input once, runs ONNX Runtime (on the event loop, or
with ``offload`` on a worker thread so the loop keeps parsing), and hands each request its
rows. At low load a request is scored at once (no added delay unless ``max_delay_s`` is set);
under load batches grow by themselves. When a batch fails, its requests are retried one by
one so that one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

_AnyArray = np.ndarray[Any, Any]
Columns = dict[str, _AnyArray]
RunFunction = Callable[[Columns], Columns]
_log = logging.getLogger("mlsteward.serving.batching")


@dataclasses.dataclass(slots=True)
class _Item:
    columns: Columns
    rows: int
    future: asyncio.Future[Columns]


class Batcher:
    """Queue requests for one model and score them in batches.

    Usage::

        batcher = Batcher(runtime.run_feeds, max_batch_size=64, max_delay_s=0.0, on_batch=histogram.observe)
        outputs = await batcher.submit(runtime.feeds(columns), rows)
    """

    def __init__(
        self,
        run: RunFunction,
        *,
        max_batch_size: int,
        max_delay_s: float,
        on_batch: Callable[[int], None] | None = None,
        offload: bool = False,
    ) -> None:
        self._run = run
        self._max_rows = max_batch_size
        self._max_delay_s = max_delay_s
        self._on_batch = on_batch
        self._pending: collections.deque[_Item] = collections.deque()
        self._pending_rows = 0
        self._draining: asyncio.Task[None] | None = None
        # offload: one thread per model; ONNX Runtime releases the GIL, so scoring overlaps request
        # parsing, at the price of two thread hand-offs per batch. Worth it with 2+ CPUs to spare;
        # with one CPU (or a CPU shared with the load), scoring on the loop is faster.
        self._executor = (
            concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")
            if offload
            else None
        )

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    async def submit(self, columns: Columns, rows: int) -> Columns:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Columns] = loop.create_future()
        self._pending.append(_Item(columns, rows, future))
        self._pending_rows += rows
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        return await future

    def close(self) -> None:
        """Release the worker thread once no request is queued (called when a model is unloaded)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                if self._max_delay_s > 0 and self._pending_rows < self._max_rows:
                    await asyncio.sleep(self._max_delay_s)
                batch = self._take()
                await self._score(loop, batch)
        finally:
            self._draining = None

    def _take(self) -> list[_Item]:
        batch = [self._pending.popleft()]
        rows = batch[0].rows
        while self._pending and rows + self._pending[0].rows <= self._max_rows:
            item = self._pending.popleft()
            batch.append(item)
            rows += item.rows
        self._pending_rows -= rows
        return batch

    async def _score(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        if len(batch) == 1:
            feeds = batch[0].columns
        else:
            names = batch[0].columns.keys()
            feeds = {name: np.concatenate([item.columns[name] for item in batch]) for name in names}
        total = sum(item.rows for item in batch)
        try:
            if self._executor is None:
                outputs = self._run(feeds)
            else:
                outputs = await loop.run_in_executor(self._executor, self._run, feeds)
        except Exception as error:
            if len(batch) > 1:
                for item in batch:  # isolate the request that broke the batch
                    await self._score(loop, [item])
                return
            _log.error("ONNX Runtime failed on a batch of %d rows: %s", total, error)
            if not batch[0].future.done():
                batch[0].future.set_exception(error)
            return
        if self._on_batch is not None:
            self._on_batch(total)
        start = 0
        for item in batch:
            if not item.future.done():  # the client may have gone away
                end = start + item.rows
                item.future.set_result(
                    outputs
                    if len(batch) == 1
                    else {name: value[start:end] for name, value in outputs.items()}
                )
            start += item.rows
