"""The decision-log segment: compressed, append-only, each carrying the hash of the one before.

Pure: no I/O, no clock (contracts §7). A segment's stored bytes are one zstd frame (with its
content checksum; gzip where ``zstandard`` is not installed) of UTF-8 lines: the header, a
canonical JSON object, then blocks: one JSON object per batch of decisions, column-oriented
(one list per field, one entry per decision; fields shared by the batch once), which ``decode``
expands into one dict per decision: writing a batch is one serialisation, not one per row.
The header names the chain (one per writer: a Deployment's pod), the segment's number in it
(``seq``, from 0), the sha256 of the previous segment's stored bytes (``prev_sha256``; 64 zeros
for the first), the sha256 of the block lines (``body_sha256``), the decision count and time
span, the writer's epoch (one per process start) and the kind: ``open`` (a writer started),
``records`` or ``close`` (a clean stop).

Names sort by time and then by number: ``<first-time>-<seq>-<last-time>.dlog.<zst|gz>`` with
times as ``YYYYMMDDTHHMMSSffffffZ`` (UTC) and ``seq`` zero-padded to 12 digits.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import orjson

SCHEMA = "mlsteward.io/decision-log/v1"
GENESIS = "0" * 64
Kind = Literal["open", "records", "close"]
KINDS: tuple[Kind, ...] = ("open", "records", "close")
_NAME = re.compile(r"^(\d{8}T\d{12}Z)-(\d{12})-(\d{8}T\d{12}Z)\.dlog\.(zst|gz)$")
_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"

try:  # zstd is preferred (3-5x faster than gzip at a better ratio); gzip keeps the log working without it
    import zstandard as _zstd
except ImportError:  # pragma: no cover - depends on the installed extras
    _zstd = None  # type: ignore[assignment]


class SegmentError(ValueError):
    """A segment's bytes or name are not a valid segment (altered, truncated or foreign)."""


@dataclasses.dataclass(frozen=True)
class Header:
    """The first line of a segment."""

    namespace: str
    deployment: str
    chain: str
    seq: int
    prev_sha256: str
    kind: Kind
    epoch: str
    records: int
    first_time: float
    last_time: float
    body_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class Segment:
    """A decoded segment: its header, its decisions, and the sha256 of its stored bytes."""

    header: Header
    records: list[dict[str, Any]]
    sha256: str


def stored_sha256(stored: bytes) -> str:
    """The digest a segment is chained by: sha256 of its stored (compressed) bytes."""
    return hashlib.sha256(stored).hexdigest()


def default_compression() -> str:
    return "zst" if _zstd is not None else "gz"


def format_time(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> float:
    return datetime.datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=datetime.UTC).timestamp()


@dataclasses.dataclass(frozen=True, order=True)
class Name:
    """What a segment's name says: its number, its time span and its compression."""

    seq: int
    first_time: float
    last_time: float
    compression: str

    def __str__(self) -> str:
        return (
            f"{format_time(self.first_time)}-{self.seq:012d}-{format_time(self.last_time)}"
            f".dlog.{self.compression}"
        )


def parse_name(name: str) -> Name:
    match = _NAME.match(name)
    if match is None:
        raise SegmentError(f"{name!r} is not a segment name (<first>-<seq>-<last>.dlog.zst|gz)")
    first, seq, last, compression = match.groups()
    return Name(int(seq), parse_time(first), parse_time(last), compression)


def encode(
    *,
    namespace: str,
    deployment: str,
    chain: str,
    seq: int,
    prev_sha256: str,
    kind: Kind,
    epoch: str,
    blocks: Sequence[bytes],
    records: int,
    first_time: float,
    last_time: float,
    compression: str | None = None,
) -> tuple[str, bytes, str]:
    """A segment from already-encoded block lines holding ``records`` decisions in all:
    (name, stored bytes, their sha256)."""
    body = b"".join(blocks)
    header = Header(
        namespace=namespace,
        deployment=deployment,
        chain=chain,
        seq=seq,
        prev_sha256=prev_sha256,
        kind=kind,
        epoch=epoch,
        records=records,
        first_time=first_time,
        last_time=last_time,
        body_sha256=hashlib.sha256(body).hexdigest(),
    )
    plain = orjson.dumps(header.to_json(), option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE) + body
    chosen = compression or default_compression()
    stored = _compress(plain, chosen)
    name = str(Name(seq, first_time, last_time, chosen))
    return name, stored, hashlib.sha256(stored).hexdigest()


SHARED = ("model_version", "model_digest", "route", "stream")
PER_DECISION = ("time", "request_id", "input_sha256", "label", "score", "seq")


def encode_block(block: Mapping[str, Any]) -> bytes:
    """One batch of decisions as a block line: the ``SHARED`` fields once, the ``PER_DECISION``
    fields as lists, optionally ``reason_codes`` (a list, ``null`` entries for rows without) and
    ``inputs`` (feature -> list of values)."""
    return orjson.dumps(block, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)


def expand(block: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A block's decisions, one dict each (contracts §7 describes the fields)."""
    count = len(block["time"])
    if any(not isinstance(block.get(name), list) or len(block[name]) != count for name in PER_DECISION):
        raise ValueError(f"every per-decision field ({', '.join(PER_DECISION)}) needs {count} entries")
    shared = {name: block.get(name) for name in SHARED}
    reasons = block.get("reason_codes")
    inputs = block.get("inputs")
    found: list[dict[str, Any]] = []
    for i in range(count):
        record: dict[str, Any] = {
            "time": block["time"][i],
            "request_id": block["request_id"][i],
            **shared,
            "input_sha256": block["input_sha256"][i],
            "output": {"label": block["label"][i], "score": block["score"][i]},
            "seq": block["seq"][i],
        }
        if reasons is not None and reasons[i] is not None:
            record["reason_codes"] = reasons[i]
        if inputs is not None:
            record["inputs"] = {name: values[i] for name, values in inputs.items()}
        found.append(record)
    return found


def decode(name: str, stored: bytes) -> Segment:
    """Decode and check a segment's bytes against its own name and body digest."""
    parsed = parse_name(name)
    try:
        plain = _decompress(stored, parsed.compression)
    except Exception as error:  # zstd/gzip raise several types for damaged frames
        raise SegmentError(f"{name}: does not decompress ({error})") from error
    head, _, body = plain.partition(b"\n")
    try:
        document = orjson.loads(head)
        if document.pop("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} header")
        header = Header(**document)
        if header.kind not in KINDS:
            raise ValueError(f"unknown kind {header.kind!r}")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise SegmentError(f"{name}: the header is not a decision-log header ({error})") from error
    if hashlib.sha256(body).hexdigest() != header.body_sha256:
        raise SegmentError(f"{name}: its records do not match the header's body_sha256")
    if header.seq != parsed.seq:
        raise SegmentError(f"{name}: the header says segment {header.seq}, the name {parsed.seq}")
    records: list[dict[str, Any]] = []
    try:
        for line in body.splitlines():
            records.extend(expand(orjson.loads(line)))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise SegmentError(f"{name}: a block of decisions is malformed ({error})") from error
    if len(records) != header.records:
        raise SegmentError(f"{name}: {len(records)} decisions, the header says {header.records}")
    return Segment(header, records, hashlib.sha256(stored).hexdigest())


def _compress(plain: bytes, compression: str) -> bytes:
    if compression == "zst":
        if _zstd is None:
            raise SegmentError("zstd compression needs the zstandard package")
        return _zstd.ZstdCompressor(level=3, write_checksum=True, write_content_size=True).compress(plain)
    if compression == "gz":
        return gzip.compress(plain, compresslevel=6, mtime=0)
    raise SegmentError(f"unknown compression {compression!r}: zst or gz")


def _decompress(stored: bytes, compression: str) -> bytes:
    if compression == "zst":
        if _zstd is None:
            raise SegmentError("reading a .zst segment needs the zstandard package")
        return _zstd.ZstdDecompressor().decompress(stored)
    return gzip.decompress(stored)
