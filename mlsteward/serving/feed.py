"""The serving → monitor channel (contracts §4): scored rows go to the sidecar off the request path.

``offer`` is called once per answered request and costs O(1) whatever the row count: it appends
references to the request's arrays and the model's outputs (no copies, no encoding) to a bounded
queue counted in rows, and gives the rows consecutive sequence numbers of this process's stream
(so the decision log shows any row that never reached it); when the queue is full the rows are
dropped and counted, never waited for. A background task takes up to ``batch_rows`` rows at a
time, groups them by (version, route), and builds each column-oriented body once per batch in C
(numpy concatenation; numeric columns as raw arrays, the rest orjson) before POSTing it to
``<monitor-url>/v1/rows`` with a tiny HTTP/1.1
client on one kept-alive connection (a new connection per batch cost more than building the
body). The connection is reopened when it has been idle for ``_IDLE_REOPEN_S``, below the
sidecar's keep-alive timeout, so a batch is never sent on a connection the sidecar is closing;
a failed send is counted and never retried (a retry could log a decision twice).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import secrets
import time
import urllib.parse
from typing import Any

import numpy as np
import orjson

from mlsteward.serving import metrics as metrics_module

_log = logging.getLogger("mlsteward.serving.feed")
_IDLE_REOPEN_S = 2.0  # uvicorn closes idle keep-alive connections after 5 s
CONTENT_TYPE = "application/vnd.mlsteward.rows.v1"
"""The binary body (contracts §4): numeric columns as raw little-endian arrays, the rest JSON."""
_AnyArray = np.ndarray[Any, Any]


@dataclasses.dataclass(slots=True)
class _Scored:
    version: str
    digest: str
    route: str
    time: float
    request_id: str
    rows: int
    seq: int
    columns: dict[str, _AnyArray]
    block: _AnyArray | None
    outputs: dict[str, _AnyArray]
    positive: int | None
    metadata: dict[str, list[Any]]
    reason_codes: _AnyArray | None


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
        self._connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._last_used = 0.0
        self.stream = secrets.token_hex(8)
        """This process's stream id: with the per-row ``seq`` it identifies every scored row."""
        self._next_seq = 0

    def offer(
        self,
        *,
        version: str,
        digest: str,
        route: str,
        request_id: str,
        rows: int,
        columns: dict[str, _AnyArray],
        block: _AnyArray | None,
        outputs: dict[str, _AnyArray],
        positive: int | None,
        metadata: dict[str, list[Any]],
        reason_codes: _AnyArray | None = None,
    ) -> None:
        seq = self._next_seq
        self._next_seq += rows  # dropped rows keep their numbers: the gap is the evidence
        if self._queued_rows + rows > self._queue_rows:
            self._dropped_full.inc(rows)
            return
        self._queue.append(
            _Scored(
                version, digest, route, time.time(), request_id, rows, seq,
                columns, block, outputs, positive, metadata, reason_codes,
            )
        )  # fmt: skip
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
            self._disconnect()
            raise

    async def flush(self) -> None:
        while self._queue:
            batch: list[_Scored] = []
            rows = 0
            while self._queue and (not batch or rows + self._queue[0].rows <= self._batch_rows):
                item = self._queue.popleft()
                batch.append(item)
                rows += item.rows
            self._queued_rows -= rows
            groups: dict[tuple[str, str, str], list[_Scored]] = collections.defaultdict(list)
            for item in batch:
                groups[(item.version, item.digest, item.route)].append(item)
            for items in groups.values():
                await self._send(items)

    async def _send(self, items: list[_Scored]) -> None:
        rows = sum(item.rows for item in items)
        try:
            body = build_body(items, self.stream)
            status = await asyncio.wait_for(self._post(body), self._timeout_s)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as error:
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
        if self._connection is not None and (
            time.monotonic() - self._last_used > _IDLE_REOPEN_S
            or self._connection[0].at_eof()  # the sidecar closed it (restarted): nothing was sent on it
            or self._connection[1].is_closing()
        ):
            self._disconnect()
        if self._connection is None:
            self._connection = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._connection
        try:
            head = (
                f"POST {self._path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
                f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                raise ValueError(f"malformed status line {status_line[:80]!r}")
            # Reuse only an HTTP/1.1 connection whose answer had a length and no "close".
            length: int | None = None
            keep = parts[0] == b"HTTP/1.1"
            while (line := await reader.readline()) not in {b"\r\n", b"\n", b""}:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"connection" and value.strip().lower() == b"close":
                    keep = False
            if length is None:
                keep = False
            elif length:
                await reader.readexactly(length)
        except BaseException:
            self._disconnect()
            raise
        self._last_used = time.monotonic()
        if not keep:
            self._disconnect()
        return int(parts[1])

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection[1].close()
            self._connection = None


def build_body(items: list[_Scored], stream: str) -> bytes:
    """The contracts §4 document for rows of one (version, digest, route).

    It runs on the event loop once per batch, so the work is a handful of numpy calls per batch
    rather than per row: one concatenation of the requests' feature blocks (per column only for
    requests that came as one tensor per feature), one of the outputs, vectorised sequence
    numbers; numeric arrays travel as raw bytes (``encode_binary``), so no number is formatted.
    """
    first = items[0]
    counts = np.fromiter((item.rows for item in items), np.int64, len(items))
    total = int(counts.sum())
    features: dict[str, Any] = {}
    blocks = [item.block for item in items]
    shared: tuple[list[str], _AnyArray] | None = None
    if all(block is not None for block in blocks):
        joined: _AnyArray = np.concatenate(blocks, axis=1)  # type: ignore[arg-type]  # no None: checked
        shared = (list(first.columns), joined.reshape(len(first.columns), total))
    else:
        for name in first.columns:
            column = np.concatenate([item.columns[name] for item in items]).reshape(-1)
            features[name] = column if column.dtype.kind == "f" else column.tolist()
    labels, score = _prediction(items)
    metadata: dict[str, list[Any]] = {}
    for name in sorted({name for item in items for name in item.metadata}):
        metadata[name] = [value for item in items for value in item.metadata.get(name, [None] * item.rows)]
    starts = np.fromiter((item.seq for item in items), np.int64, len(items))
    times = np.fromiter((item.time for item in items), np.float64, len(items))
    if total == len(items):  # one row per request: the common case, no repeats
        request_ids = [item.request_id for item in items]
        seq, row_times = starts, times
    else:
        request_ids = [rid for item in items for rid in _request_ids(item)]
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        seq, row_times = np.repeat(starts, counts) + offsets, np.repeat(times, counts)
    document: dict[str, Any] = {
        "model_version": first.version,
        "model_digest": first.digest,
        "route": first.route,
        "time": float(times.max()),
        "times": row_times,
        "stream": stream,
        "seq": seq,
        "request_ids": request_ids,
        "features": features,
        "prediction": {"label": labels, "score": score},
        "metadata": metadata,
    }
    if any(item.reason_codes is not None for item in items):
        document["reason_codes"] = [codes for item in items for codes in _reason_codes(item)]
    return encode_binary(document, shared)


def encode_binary(document: dict[str, Any], features: tuple[list[str], _AnyArray] | None = None) -> bytes:
    """The contracts §4 binary body: ``u32le(header length) + header JSON + arrays``.

    Every numeric numpy array in the document (top level, ``features``, ``prediction``) is
    replaced in the header by ``{"$array": [dtype, offset, count]}`` and its bytes appended at an
    offset (from the start of the array section) that is a multiple of 8; the monitor reads them
    back with ``numpy.frombuffer``, with no decimal formatting or parsing on either side.
    ``features``: names and a feature-major ``[F, rows]`` block, written in one piece, each
    feature's reference pointing at its row of the block.
    """
    chunks: list[bytes] = []
    offset = 0

    def append(array: _AnyArray) -> int:
        nonlocal offset
        start = offset
        chunks.append(array.tobytes())
        offset += array.nbytes
        if offset % 8:
            chunks.append(b"\0" * (-offset % 8))
            offset += -offset % 8
        return start

    def reference(value: Any) -> Any:
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            return value
        array = value.reshape(-1)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        return {"$array": [array.dtype.str, append(array), int(array.size)]}

    header = {key: reference(value) for key, value in document.items()}
    for section in ("features", "prediction"):
        if isinstance(header.get(section), dict):
            header[section] = {key: reference(value) for key, value in header[section].items()}
    if features is not None:
        names, block = features
        block = np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<"))
        start, width = append(block), block.shape[1]
        header["features"] = {
            **header.get("features", {}),
            **{
                name: {"$array": [block.dtype.str, start + j * width * block.itemsize, width]}
                for j, name in enumerate(names)
            },
        }
    head = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    return len(head).to_bytes(4, "little") + head + b"".join(chunks)


def _prediction(items: list[_Scored]) -> tuple[list[Any] | None, _AnyArray]:
    """Contracts §4 prediction of a batch of one model: the labels (classification) and scores."""
    outputs = items[0].outputs
    if "variable" in outputs:
        return None, np.concatenate([item.outputs["variable"].reshape(-1) for item in items])
    probabilities = np.concatenate([item.outputs["probabilities"] for item in items])
    positive = items[0].positive
    if positive is not None and probabilities.shape[1] == 2:
        score = np.ascontiguousarray(probabilities[:, positive])
    else:
        score = probabilities.max(axis=1)
    joined = np.concatenate([item.outputs["label"].reshape(-1) for item in items])
    if joined.dtype.kind == "O":
        return joined.tolist(), score
    # Few distinct classes: format each once and pick per row, rather than str() per row.
    classes, positions = np.unique(joined, return_inverse=True)
    names = np.array([str(value) for value in classes.tolist()], dtype=object)
    labels: list[Any] = names[positions].tolist()
    return labels, score


_SUFFIXES = [f":{i}" for i in range(4096)]  # row suffixes of multi-row requests, formatted once


def _request_ids(item: _Scored) -> list[str]:
    if item.rows == 1:
        return [item.request_id]
    rid = item.request_id
    if item.rows <= len(_SUFFIXES):
        return [rid + suffix for suffix in _SUFFIXES[: item.rows]]
    return [f"{rid}:{i}" for i in range(item.rows)]


def _reason_codes(item: _Scored) -> list[list[str] | None]:
    if item.reason_codes is None:
        return [None] * item.rows
    return [list(row) for row in item.reason_codes.tolist()]
