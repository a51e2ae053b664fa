"""A level-triggered work queue: keys in, one reconcile at a time per key, retries with backoff.

Like controller-runtime's: a key added while it is being reconciled runs once more afterwards;
a key added many times before a worker takes it runs once; a failing key is retried with
exponential backoff; every key comes back after the delay its reconciler asks for.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable

Key = tuple[str, str, str]  # (kind, namespace, name)
Reconcile = Callable[[Key], Awaitable[float | None]]

_log = logging.getLogger("mlsteward.operator.queue")
MIN_BACKOFF = 0.5
MAX_BACKOFF = 60.0
# A deferred write waits for the queue to be idle, but never longer than this, in seconds.
MAX_DEFER = 30.0
# ... and until no key was added for this long, in seconds: objects created in a burst arrive
# one watch event at a time, so the queue is briefly idle between them.
QUIET_BEFORE_DEFERRED = 0.5
DEFERRED_AT_ONCE = 32


class WorkQueue:
    """Usage::

    queue = WorkQueue(reconcile, workers=8)
    task = asyncio.create_task(queue.run())
    queue.add(("Model", "default", "credit"))
    """

    def __init__(self, reconcile: Reconcile, workers: int) -> None:
        self._reconcile = reconcile
        self._workers = workers
        self._ready: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._running: set[Key] = set()
        self._again: set[Key] = set()
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[Key, int] = {}
        self._deferred: collections.deque[tuple[float, Key, Callable[[], Awaitable[None]]]] = (
            collections.deque()
        )
        self._deferred_added = asyncio.Event()
        self._last_added = 0.0
        self.done = 0
        """Reconciles finished so far (failed ones too)."""
        self.observe: Callable[[str, float], None] = lambda kind, seconds: None
        """Called with (kind, seconds) after every reconcile, failed ones too (the metrics)."""

    def depth(self) -> int:
        """Keys waiting for a worker."""
        return self._ready.qsize()

    def idle(self) -> bool:
        """No key waiting and none being reconciled."""
        return not self._running and self._ready.empty()

    def add(self, key: Key, delay: float = 0.0) -> None:
        """Reconcile ``key`` after ``delay`` seconds (sooner if already scheduled sooner)."""
        if delay > 0:
            loop = asyncio.get_running_loop()
            due = time.monotonic() + delay
            existing = self._timers.get(key)
            if existing is not None and existing[0] <= due:
                return
            if existing is not None:
                existing[1].cancel()
            self._timers[key] = (due, loop.call_later(delay, self._fire, key))
            return
        self._last_added = time.monotonic()
        if key in self._running:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.put_nowait(key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def quiet(self) -> bool:
        """Idle, and no key added for :data:`QUIET_BEFORE_DEFERRED` seconds."""
        return self.idle() and time.monotonic() - self._last_added >= QUIET_BEFORE_DEFERRED

    def defer(self, key: Key, write: Callable[[], Awaitable[None]]) -> None:
        """Run ``write`` (a pass's status write) once the queue is :meth:`quiet`, or after
        :data:`MAX_DEFER` seconds: during a burst, creations go first. A failed write
        reconciles ``key`` afresh."""
        self._deferred.append((time.monotonic() + MAX_DEFER, key, write))
        self._deferred_added.set()

    async def _drain(self) -> None:
        slots = asyncio.Semaphore(DEFERRED_AT_ONCE)
        tasks: set[asyncio.Task[None]] = set()
        while True:
            if not self._deferred:
                self._deferred_added.clear()
                await self._deferred_added.wait()
                continue
            due, key, write = self._deferred[0]
            if not self.quiet() and time.monotonic() < due:
                await asyncio.sleep(0.05)
                continue
            self._deferred.popleft()
            await slots.acquire()
            task = asyncio.create_task(self._deferred_write(key, write, slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _deferred_write(
        self, key: Key, write: Callable[[], Awaitable[None]], slots: asyncio.Semaphore
    ) -> None:
        try:
            await write()
        except Exception as error:
            _log.info("deferred write of %s/%s/%s failed, reconciling afresh: %s", *key, error)
            self.add(key)
        finally:
            slots.release()

    async def run(self) -> None:
        workers = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        workers.append(asyncio.create_task(self._drain()))
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            for _, handle in self._timers.values():
                handle.cancel()

    async def _work(self) -> None:
        while True:
            key = await self._ready.get()
            self._queued.discard(key)
            self._running.add(key)
            started = time.monotonic()
            try:
                delay = await self._reconcile(key)
                _log.debug("reconciled %s/%s/%s in %.0f ms", *key, (time.monotonic() - started) * 1000)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                backoff = min(MAX_BACKOFF, MIN_BACKOFF * 2 ** (failures - 1))
                _log.warning("reconcile %s/%s/%s failed (retry in %.1fs): %s", *key, backoff, error)
                delay = backoff
            else:
                self._failures.pop(key, None)
            finally:
                self._running.discard(key)
                self.done += 1
                self.observe(key[0], time.monotonic() - started)
            if key in self._again:
                self._again.discard(key)
                self.add(key)
            elif delay is not None:
                self.add(key, delay)

    def forget(self, key: Key) -> None:
        """Drop a deleted object's timers and failure count."""
        entry = self._timers.pop(key, None)
        if entry is not None:
            entry[1].cancel()
        self._failures.pop(key, None)
