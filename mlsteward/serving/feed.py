"""The serving → monitor channel (contracts §4): scored rows go to the sidecar off the request path.

``offer`` is called once per answered request and only appends to a bounded queue (counted in
rows); when the queue is full the rows are dropped and counted, never waited for. A background
task groups queued rows by (version, route), builds the column-oriented body and POSTs it to
``<monitor-url>/v1/rows`` with a tiny HTTP/1.1 client (one connection per batch, ``Connection:
close``, so no response framing beyond the status line is needed).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
import urllib.parse
from typing import Any

import numpy as np
import orjson

from mlsteward.serving import metrics as metrics_module

_log = logging.getLogger("mlsteward.serving.feed")
_AnyArray = np.ndarray[Any, Any]


@dataclasses.dataclass(slots=True)
class _Scored:
    version: str
    route: str
    time: float
    request_ids: list[str]
    columns: dict[str, _AnyArray]
    label: _AnyArray | None
    score: _AnyArray
    metadata: dict[str, list[Any]]


class MonitorFeed:
    """Bounded, non-blocking feed of scored rows to the drift-monitor sidecar."""

    def __init__(
        self,
        url: str,
        *,
        queue_rows: int,
        batch_rows: int,
        flush_interval_s: float,
        timeout_s: float,
        metrics: metrics_module.ServingMetrics,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 80
        self._path = parsed.path.rstrip("/") + "/v1/rows"
        self._queue: collections.deque[_Scored] = collections.deque()
        self._queued_rows = 0
        self._queue_rows = queue_rows
        self._batch_rows = batch_rows
        self._flush_interval_s = flush_interval_s
        self._timeout_s = timeout_s
        self._metrics = metrics
        self._wakeup = asyncio.Event()
        self._dropped_full = metrics.monitor_dropped_rows.labels("queue_full")

    def offer(
        self,
        *,
        version: str,
        route: str,
        request_ids: list[str],
        columns: dict[str, _AnyArray],
        label: _AnyArray | None,
        score: _AnyArray,
        metadata: dict[str, list[Any]],
    ) -> None:
        rows = len(request_ids)
        if self._queued_rows + rows > self._queue_rows:
            self._dropped_full.inc(rows)
            return
        self._queue.append(_Scored(version, route, time.time(), request_ids, columns, label, score, metadata))
        self._queued_rows += rows
        if self._queued_rows >= self._batch_rows:
            self._wakeup.set()

    async def run(self) -> None:
        """Send until cancelled; on cancellation, one last bounded flush."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._flush_interval_s)
                self._wakeup.clear()
                await self.flush()
        except asyncio.CancelledError:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.flush(), self._timeout_s)
            raise

    async def flush(self) -> None:
        while self._queue:
            batch: list[_Scored] = []
            rows = 0
            while self._queue and (not batch or rows + len(self._queue[0].request_ids) <= self._batch_rows):
                item = self._queue.popleft()
                batch.append(item)
                rows += len(item.request_ids)
            self._queued_rows -= rows
            groups: dict[tuple[str, str], list[_Scored]] = collections.defaultdict(list)
            for item in batch:
                groups[(item.version, item.route)].append(item)
            for items in groups.values():
                await self._send(items)

    async def _send(self, items: list[_Scored]) -> None:
        rows = sum(len(item.request_ids) for item in items)
        try:
            body = build_body(items)
            status = await asyncio.wait_for(self._post(body), self._timeout_s)
        except (OSError, TimeoutError, ValueError) as error:
            _log.warning(
                "monitor feed: %d rows not delivered to %s:%d: %s", rows, self._host, self._port, error
            )
            self._metrics.monitor_dropped_rows.labels("send_failed").inc(rows)
            return
        if 200 <= status < 300:
            self._metrics.monitor_sent_rows.inc(rows)
        else:
            _log.warning("monitor feed: the monitor answered %d to a batch of %d rows", status, rows)
            self._metrics.monitor_dropped_rows.labels("rejected").inc(rows)

    async def _post(self, body: bytes) -> int:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        try:
            head = (
                f"POST {self._path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                raise ValueError(f"malformed status line {status_line[:80]!r}")
            return int(parts[1])
        finally:
            writer.close()


def build_body(items: list[_Scored]) -> bytes:
    """The contracts §4 document for rows of one (version, route).

    It runs on the event loop, so it stays in C: numeric columns go to orjson as numpy arrays
    (NaN is written as null), the rest through ``tolist``; no Python loop per value.
    """
    first = items[0]
    features: dict[str, Any] = {}
    for name in first.columns:
        column = np.concatenate([item.columns[name] for item in items]).reshape(-1)
        features[name] = column if column.dtype.kind == "f" else column.tolist()
    labels = None
    if first.label is not None:
        labels = np.concatenate([item.label.reshape(-1) for item in items if item.label is not None])
        labels = labels.tolist() if labels.dtype.kind == "O" else labels.astype(str).tolist()
    metadata: dict[str, list[Any]] = {}
    for name in sorted({name for item in items for name in item.metadata}):
        metadata[name] = [
            value for item in items for value in item.metadata.get(name, [None] * len(item.request_ids))
        ]
    document = {
        "model_version": first.version,
        "route": first.route,
        "time": max(item.time for item in items),
        "request_ids": [rid for item in items for rid in item.request_ids],
        "features": features,
        "prediction": {"label": labels, "score": np.concatenate([item.score.reshape(-1) for item in items])},
        "metadata": metadata,
    }
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
