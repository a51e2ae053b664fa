"""The serving → monitor channel (contracts §4): scored rows go to the sidecar off the request path.

``offer`` is called once per answered request and costs O(1) whatever the row count: it appends
references to the request's arrays and the model's outputs (no copies, no encoding) to its
(version, digest, route) group, one list per column, bounded by a count of queued rows, and gives
the rows consecutive sequence numbers of this process's stream (so the decision log shows any row
that never reached it); when the queue is full the rows are dropped and counted, never waited
for. A background task sends a group as soon as it holds ``batch_rows`` rows (a smaller one
after the flush interval), building its column-oriented body once per batch in C (numpy
concatenation; numeric columns as raw arrays, the rest orjson) before POSTing it to
``<monitor-url>/v1/rows`` with a tiny HTTP/1.1 client on one kept-alive connection (a new
connection per batch cost more than building the
body). The connection is reopened when it has been idle for ``_IDLE_REOPEN_S``, below the
sidecar's keep-alive timeout, so a batch is never sent on a connection the sidecar is closing;
a failed send is counted and never retried (a retry could log a decision twice).
"""

from __future__ import annotations

import asyncio
import contextlib
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
_JOIN_REQUESTS = 128  # requests' arrays joined between two yields to the event loop
CONTENT_TYPE = "application/vnd.mlsteward.rows.v1"
"""The binary body (contracts §4): numeric columns as raw little-endian arrays, the rest JSON."""
_AnyArray = np.ndarray[Any, Any]


class _Pending:
    """Rows of one (version, digest, route) waiting to be sent, kept column by column.

    ``add`` appends references (no copies, no per-request object) to one list per field, so a
    batch is built with one concatenation per column and no Python pass over its requests.
    """

    __slots__ = (
        "blockless",
        "blocks",
        "columns",
        "counts",
        "digest",
        "labels",
        "metadata",
        "names",
        "positive",
        "probabilities",
        "reason_codes",
        "request_ids",
        "route",
        "rows",
        "seqs",
        "times",
        "variables",
        "version",
    )

    def __init__(self, version: str, digest: str, route: str, positive: int | None) -> None:
        self.version, self.digest, self.route, self.positive = version, digest, route, positive
        self.names: list[str] = []
        self.rows = 0
        self.counts: list[int] = []
        self.seqs: list[int] = []
        self.times: list[float] = []
        self.request_ids: list[str] = []
        self.blocks: list[_AnyArray | None] = []
        self.columns: list[dict[str, _AnyArray]] = []
        self.blockless = 0  # requests that came as one tensor per feature (no [F, n] block)
        self.labels: list[_AnyArray] = []
        self.probabilities: list[_AnyArray] = []
        self.variables: list[_AnyArray] = []
        self.metadata: list[tuple[int, int, dict[str, list[Any]]]] = []  # (first row, rows, values)
        self.reason_codes: list[tuple[int, _AnyArray]] = []  # (first row, codes)

    def add(
        self,
        at: float,
        request_id: str,
        rows: int,
        seq: int,
        *,
        columns: dict[str, _AnyArray],
        block: _AnyArray | None,
        outputs: dict[str, _AnyArray],
        metadata: dict[str, list[Any]],
        reason_codes: _AnyArray | None,
    ) -> None:
        if not self.counts:
            self.names = list(columns)
        if metadata:
            self.metadata.append((self.rows, rows, metadata))
        if reason_codes is not None:
            self.reason_codes.append((self.rows, reason_codes))
        self.rows += rows
        self.counts.append(rows)
        self.seqs.append(seq)
        self.times.append(at)
        self.request_ids.append(request_id)
        self.blocks.append(block)
        self.columns.append(columns)
        if block is None:
            self.blockless += 1
        if "variable" in outputs:
            self.variables.append(outputs["variable"])
        else:
            self.labels.append(outputs["label"])
            self.probabilities.append(outputs["probabilities"])

    async def compact(self) -> float:
        """Join the requests' arrays in slices, yielding to the event loop between slices, so a
        large batch never holds up requests for the whole join (``body`` then joins a few).
        Returns the event-loop time it took."""
        spent = 0.0
        for name in ("blocks", "labels", "probabilities", "variables"):
            parts = getattr(self, name)
            if len(parts) <= _JOIN_REQUESTS or (name == "blocks" and self.blockless):
                continue
            axis = 1 if name == "blocks" else 0
            joined = []
            for start in range(0, len(parts), _JOIN_REQUESTS):
                began = time.perf_counter()
                joined.append(np.concatenate(parts[start : start + _JOIN_REQUESTS], axis=axis))
                spent += time.perf_counter() - began
                await asyncio.sleep(0)
            setattr(self, name, joined)
        return spent

    def body(self, stream: str) -> bytes:
        """The contracts §4 document of these rows, in binary form (``encode_binary``).

        It runs on the event loop once per batch: a handful of numpy calls per batch rather than
        per row or request; numeric arrays travel as raw bytes, so no number is formatted.
        """
        total, requests = self.rows, len(self.counts)
        counts = np.array(self.counts, np.int64)
        features: dict[str, Any] = {}
        shared: tuple[list[str], _AnyArray] | None = None
        if self.blockless == 0:
            joined: _AnyArray = np.concatenate(self.blocks, axis=1)  # type: ignore[arg-type]  # no None
            shared = (self.names, joined.reshape(len(self.names), total))
        else:
            for j, name in enumerate(self.names):
                column = np.concatenate(
                    [c[name] if b is None else b[j] for b, c in zip(self.blocks, self.columns, strict=True)]
                ).reshape(-1)
                features[name] = column if column.dtype.kind == "f" else column.tolist()
        starts = np.array(self.seqs, np.int64)
        times = np.array(self.times, np.float64)
        if total == requests:  # one row per request: the common case, no repeats
            seq, row_times = starts, times
        else:
            offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            seq, row_times = np.repeat(starts, counts) + offsets, np.repeat(times, counts)
        document: dict[str, Any] = {
            "model_version": self.version,
            "model_digest": self.digest,
            "route": self.route,
            "time": float(times.max()),
            "times": row_times,
            "stream": stream,
            "seq": seq,
            # One id per request; with multi-row requests ``request_rows`` says how many rows
            # each has and the monitor derives the row ids (``<id>:<i>``).
            "request_ids": self.request_ids,
            "features": features,
            "prediction": self._prediction(),
            "metadata": self._metadata(),
        }
        if total != requests:
            document["request_rows"] = counts
        if self.reason_codes:
            codes: list[list[str] | None] = [None] * total
            for first, block in self.reason_codes:
                codes[first : first + len(block)] = [list(row) for row in block.tolist()]
            document["reason_codes"] = codes
        return encode_binary(document, shared)

    def _prediction(self) -> dict[str, Any]:
        """Labels (classification) and scores. Labels travel as indices into ``label_names`` (the
        few distinct classes, formatted once), so no string is made per row on the server."""
        if self.variables:
            return {"label": None, "score": np.concatenate(self.variables).reshape(-1)}
        probabilities = np.concatenate(self.probabilities)
        if self.positive is not None and probabilities.shape[1] == 2:
            score = np.ascontiguousarray(probabilities[:, self.positive])
        else:
            score = probabilities.max(axis=1)
        classes, positions = np.unique(np.concatenate(self.labels).reshape(-1), return_inverse=True)
        names = [str(value) for value in classes.tolist()]
        return {"label": positions.astype(np.int32).reshape(-1), "label_names": names, "score": score}

    def _metadata(self) -> dict[str, list[Any]]:
        """Sensitive attributes from request metadata: only the columns some request carried,
        ``None`` for the rows of requests that did not."""
        metadata: dict[str, list[Any]] = {}
        for first, rows, values in self.metadata:
            for name, column in values.items():
                metadata.setdefault(name, [None] * self.rows)[first : first + rows] = column
        return dict(sorted(metadata.items()))


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
        self._pending: dict[tuple[str, str, str], _Pending] = {}
        self._queued_rows = 0
        self._queue_rows = queue_rows
        self._batch_rows = batch_rows
        self._flush_interval_s = flush_interval_s
        self._timeout_s = timeout_s
        self._metrics = metrics
        self._wakeup = asyncio.Event()
        self._dropped_full = metrics.monitor_dropped_rows.labels("queue_full")
        self._feed_seconds = metrics.monitor_feed_seconds
        self._offer_seconds = 0.0  # event-loop time in ``offer`` not yet added to the metric
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
        started = time.perf_counter()
        seq = self._next_seq
        self._next_seq += rows  # dropped rows keep their numbers: the gap is the evidence
        if self._queued_rows + rows > self._queue_rows:
            self._dropped_full.inc(rows)
            self._offer_seconds += time.perf_counter() - started
            return
        key = (version, digest, route)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(version, digest, route, positive)
        pending.add(
            time.time(), request_id, rows, seq,
            columns=columns, block=block, outputs=outputs, metadata=metadata, reason_codes=reason_codes,
        )  # fmt: skip
        if pending.rows >= self._batch_rows:
            self._wakeup.set()
        self._queued_rows += rows
        self._offer_seconds += time.perf_counter() - started  # a float add: Counter.inc takes a lock

    async def run(self) -> None:
        """Send until cancelled; on cancellation, one last bounded flush.

        Full batches go as soon as they are full; a partial batch waits for the flush interval.
        Sending whatever arrived during the previous send instead (a loop until the queue is
        empty) degrades to a POST of a few rows per network round trip under load, which cost
        the server several times the CPU of the rows themselves.
        """
        try:
            while True:
                timed_out = False
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self._flush_interval_s)
                except TimeoutError:
                    timed_out = True
                self._wakeup.clear()
                await self.flush(partial=timed_out)
        except asyncio.CancelledError:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.flush(), self._timeout_s)
            self._disconnect()
            raise

    async def flush(self, *, partial: bool = True) -> None:
        """Send every group of rows that reached ``batch_rows``; with ``partial`` (the flush
        interval passed, or shutdown) every group, however small."""
        for key, pending in list(self._pending.items()):
            if partial or pending.rows >= self._batch_rows:
                del self._pending[key]  # rows offered while this one is sent start a new group
                self._queued_rows -= pending.rows
                self._feed_seconds.inc(await pending.compact())
                await self._send(pending)

    async def _send(self, pending: _Pending) -> None:
        rows = pending.rows
        started = time.perf_counter()
        try:
            body = pending.body(self.stream)
            self._feed_seconds.inc(time.perf_counter() - started + self._offer_seconds)
            self._offer_seconds = 0.0
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
            started = time.perf_counter()
            head = (
                f"POST {self._path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
                f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            self._feed_seconds.inc(time.perf_counter() - started)
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
