"""The decision-log writer: every accepted batch becomes audit records, written off the request path.

``offer`` runs on the sidecar's event loop after a batch is accepted and only appends a
reference to the decoded body to a bounded queue (counted in decisions); when the queue is full
the decisions are dropped and counted in ``mlsteward_audit_decisions_dropped_total``, never
waited for. A writer thread turns queued bodies into records (per-row input digest, output,
route, model version and artifact digest, reason codes, and the inputs only when
``log_inputs``), and writes a segment (``mlsteward.audit.segments``) when
``segment_max_records`` are waiting or ``flush_interval_s`` has passed. The chain continues
across restarts of the same chain name: the writer reads the chain's head when it starts, writes
an ``open`` segment, and a ``close`` segment on a clean stop, so a SIGKILL shows as an epoch
without a close. A segment the store refuses is retried before anything newer; meanwhile the
queue fills and drops are counted. Retention runs in the same thread once per
``retention_check_s``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlsteward.audit import chains, locations, records, retention, segments
from mlsteward.monitoring import batches
from mlsteward.store.errors import StoreError

_log = logging.getLogger("mlsteward.monitoring.decisions")
Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class LogSettings:
    """What the writer needs (settings.py maps the flags)."""

    namespace: str
    deployment: str
    chain: str
    log_inputs: bool = False
    flush_interval_s: float = 10.0
    segment_max_records: int = 50_000
    max_queued_records: int = 200_000
    retention_s: float = 180 * 86_400.0
    retention_check_s: float = 3600.0


@dataclasses.dataclass(slots=True)
class _Queued:
    document: Mapping[str, Any]
    rows: int


class DecisionLog:
    """Bounded, non-blocking decision log of one chain.

    Usage::

        log = DecisionLog(locations.open_location(uri), LogSettings(...), clock=time.time)
        log.start()                  # reads the chain head, writes the open segment
        log.offer(document, rows)    # per accepted batch, on the event loop
        log.close()                  # flushes, writes the close segment
    """

    def __init__(self, location: locations.Location, config: LogSettings, clock: Clock) -> None:
        self.location = location
        self.config = config
        self.clock = clock
        self.prefix = locations.chain_prefix(config.namespace, config.deployment, config.chain)
        self.epoch = f"{int(clock()):x}-{secrets.token_hex(4)}"
        self._queue: collections.deque[_Queued] = collections.deque()
        self._queued = 0
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._prev = segments.GENESIS
        self._pending: tuple[str, bytes, str, int] | None = None  # a segment the store refused
        self._opened = False
        self._last_retention = float("-inf")
        self.dropped = 0
        self.written_records = 0
        self.written_segments = 0
        self.write_failures = 0
        self.expired_segments = 0

    # --- the event loop's side: O(1) per batch --------------------------------------------

    def offer(self, document: Mapping[str, Any], rows: int) -> None:
        with self._lock:
            if self._queued + rows > self.config.max_queued_records or self._stopping:
                self.dropped += rows
                return
            self._queue.append(_Queued(document, rows))
            self._queued += rows
            full = self._queued >= self.config.segment_max_records
        if full:
            self._wakeup.set()

    @property
    def queued(self) -> int:
        return self._queued

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer; a store that cannot be reached now is retried at every flush
        (decisions queue meanwhile, and are dropped and counted once the queue is full)."""
        self._open()
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued and a ``close`` segment (a clean stop)."""
        self._stopping = True
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        now = self.clock()
        if self._opened and self._flush_pending():
            self._write("close", [], now, now)

    def _open(self) -> bool:
        """Continue the chain and write this epoch's ``open`` segment, once; False until done."""
        if self._opened:
            return True
        try:
            self._resume_chain()
        except (StoreError, OSError, segments.SegmentError) as error:
            self.write_failures += 1
            _log.warning(
                "decision log: cannot read the chain's head yet (%s); retrying at the next flush", error
            )
            return False
        now = self.clock()
        self._opened = self._write("open", [], now, now)
        return self._opened

    def _resume_chain(self) -> None:
        """Continue the chain after its newest segment (or its newest retention deletion)."""
        newest: tuple[int, str] | None = None
        for key in self.location.list(self.prefix + "/segments"):
            try:
                name = segments.parse_name(key)
            except segments.SegmentError:
                continue
            if newest is None or name.seq > newest[0]:
                newest = (name.seq, key)
        deleted = chains.deletions(self.location, self.prefix)
        last_deleted = max(deleted, default=-1)
        if newest is not None and newest[0] > last_deleted:
            stored = self.location.get(f"{self.prefix}/segments/{newest[1]}")
            self._seq, self._prev = newest[0] + 1, segments.stored_sha256(stored)
        elif last_deleted >= 0:
            self._seq, self._prev = last_deleted + 1, deleted[last_deleted].sha256

    # --- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        deadline = time.monotonic() + self.config.flush_interval_s
        while not self._stopping:
            self._wakeup.wait(max(0.0, deadline - time.monotonic()))
            self._wakeup.clear()
            if self._stopping:
                break
            if self._queued < self.config.segment_max_records and time.monotonic() < deadline:
                continue
            deadline = time.monotonic() + self.config.flush_interval_s
            try:
                self._flush()
                self._expire()
            except Exception:  # the writer must outlive any one failure; the next flush retries
                _log.exception("decision log: flush failed")
        try:
            self._flush()
        except Exception:
            _log.exception("decision log: final flush failed")

    def _take(self) -> list[_Queued]:
        taken: list[_Queued] = []
        count = 0
        with self._lock:
            while self._queue and count < self.config.segment_max_records:
                item = self._queue.popleft()
                taken.append(item)
                count += item.rows
            self._queued -= count
        return taken

    def _flush(self) -> None:
        if not self._open() or not self._flush_pending():
            return
        while self._queued:
            taken = self._take()
            lines, first, last = self._blocks(taken)
            if not lines:
                continue
            if not self._write("records", lines, first, last, sum(item.rows for item in taken)):
                return

    def _flush_pending(self) -> bool:
        """Retry a refused segment first; False while the store still refuses it."""
        if self._pending is None:
            return True
        name, stored, digest, count = self._pending
        return self._put(name, stored, digest, count)

    def _write(
        self, kind: segments.Kind, lines: list[bytes], first: float, last: float, records: int = 0
    ) -> bool:
        config = self.config
        name, stored, digest = segments.encode(
            namespace=config.namespace,
            deployment=config.deployment,
            chain=config.chain,
            seq=self._seq,
            prev_sha256=self._prev,
            kind=kind,
            epoch=self.epoch,
            blocks=lines,
            records=records,
            first_time=first,
            last_time=last,
        )
        return self._put(name, stored, digest, records)

    def _put(self, name: str, stored: bytes, digest: str, count: int) -> bool:
        try:
            self.location.put(f"{self.prefix}/segments/{name}", stored)
        except (StoreError, OSError) as error:
            self.write_failures += 1
            self._pending = (name, stored, digest, count)
            _log.warning("decision log: segment %s not written (%s); retrying at the next flush", name, error)
            return False
        self._pending = None
        self._seq += 1
        self._prev = digest
        self.written_segments += 1
        self.written_records += count
        return True

    def _blocks(self, taken: list[_Queued]) -> tuple[list[bytes], float, float]:
        lines: list[bytes] = []
        first, last = float("inf"), float("-inf")
        for item in taken:
            block = _block(item.document, item.rows, self.config.log_inputs)
            lines.append(segments.encode_block(block))
            if item.rows:
                times = np.asarray(block["time"], dtype=np.float64)
                first, last = min(first, float(times.min())), max(last, float(times.max()))
        return lines, first, last

    def _expire(self) -> None:
        now = self.clock()
        if now - self._last_retention < self.config.retention_check_s:
            return
        self._last_retention = now
        deleted = retention.expire(
            self.location, self.config.namespace, self.config.deployment, self.config.retention_s, now
        )
        self.expired_segments += len(deleted)
        if deleted:
            _log.info("decision log: retention deleted %d expired segments", len(deleted))


def _block(document: Mapping[str, Any], count: int, log_inputs: bool) -> dict[str, Any]:
    """The block of decisions (contracts §7) of one accepted ``POST /v1/rows`` body (§4).

    Numeric fields may be numpy arrays (from a binary body); orjson writes them as lists.
    """
    features: Mapping[str, Any] = document.get("features") or {}
    prediction: Mapping[str, Any] = document.get("prediction") or {}
    batch_time = float(document.get("time") or 0.0)
    block: dict[str, Any] = {
        "time": _given(document.get("times"), [batch_time] * count),
        "request_id": _given(batches.row_ids(document), [None] * count),
        "model_version": document.get("model_version", ""),
        "model_digest": document.get("model_digest"),
        "route": document.get("route", "champion"),
        "stream": document.get("stream"),
        "input_sha256": records.input_digests(features, count),
        "label": _given(prediction.get("label"), [None] * count),
        "score": _given(prediction.get("score"), [None] * count),
        "seq": _given(document.get("seq"), [None] * count),
    }
    if document.get("reason_codes") is not None:
        block["reason_codes"] = document["reason_codes"]
    if log_inputs:
        block["inputs"] = dict(features)
    return block


def _given(value: Any, default: list[Any]) -> Any:
    return default if value is None else value


class DecisionLogCollector(Collector):
    """``mlsteward_audit_*`` metric families, read from the writer at scrape time."""

    def __init__(self, log: DecisionLog) -> None:
        self.log = log

    def collect(self) -> Iterator[Metric]:
        log = self.log
        families = [
            ("decisions_dropped", "Decisions not logged because the log's queue was full.", log.dropped),
            ("decisions_written", "Decisions written to the decision log.", log.written_records),
            ("segments_written", "Decision-log segments written.", log.written_segments),
            ("write_failures", "Segment writes the store refused (each is retried).", log.write_failures),
            ("segments_expired", "Segments deleted by retention.", log.expired_segments),
        ]
        for name, documentation, value in families:
            family = CounterMetricFamily("mlsteward_audit_" + name, documentation)
            family.add_metric([], value)
            yield family
        queued = GaugeMetricFamily("mlsteward_audit_queued_decisions", "Decisions waiting to be written.")
        queued.add_metric([], log.queued)
        yield queued
