"""Verifying decision-log chains: which segments are missing, altered or out of place, and what was lost.

``verify`` walks every chain of a Deployment in segment order. A segment is **altered** when it
does not decode, its records do not match its header, or its bytes do not hash to the
``prev_sha256`` the next segment recorded; **misplaced** when its header's number is not the
one in its name (segments renamed or reordered); **missing** when a number between the first
and the last is absent and no retention deletion accounts for it. Those three mean tampering.

Losses are reported apart, because they are what a crash looks like: a writer epoch whose
last segment is not a ``close`` while a later epoch exists (**unclean_end**: the writer was
killed and its unflushed tail is gone), and gaps in the per-stream sequence numbers the server
gives every scored row (**lost_records**: rows dropped by a full queue, a failed send, or a
killed writer). Segments deleted by retention are **expired**, not missing.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from typing import Any, Literal

import orjson

from mlsteward.audit import locations, segments
from mlsteward.store.errors import StoreError

FindingKind = Literal["altered", "misplaced", "missing", "duplicated", "unclean_end", "lost_records", "open"]
TAMPERING: frozenset[str] = frozenset({"altered", "misplaced", "missing", "duplicated"})
_MAX_RANGES = 5


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: FindingKind
    chain: str
    segment: str
    """The segment's name, or ``#<seq>`` for one that is not there."""
    message: str

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Report:
    """The outcome of verifying every chain of one Deployment."""

    namespace: str
    deployment: str
    chains: list[str] = dataclasses.field(default_factory=list)
    segments: int = 0
    records: int = 0
    expired: int = 0
    findings: list[Finding] = dataclasses.field(default_factory=list)

    @property
    def tampered(self) -> bool:
        return any(finding.kind in TAMPERING for finding in self.findings)

    @property
    def verdict(self) -> str:
        if self.tampered:
            return "tampered"
        if any(finding.kind in {"unclean_end", "lost_records"} for finding in self.findings):
            return "intact-with-losses"
        return "intact"

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "deployment": self.deployment,
            "verdict": self.verdict,
            "chains": self.chains,
            "segments": self.segments,
            "records": self.records,
            "expired_segments": self.expired,
            "findings": [finding.to_json() for finding in self.findings],
        }


RecordVisitor = Callable[[segments.Header, dict[str, Any]], None]


@dataclasses.dataclass(frozen=True)
class Deletion:
    seq: int
    name: str
    sha256: str


def deletions(location: locations.Location, prefix: str) -> dict[int, Deletion]:
    """The retention ledger of one chain: segment number -> what was deleted."""
    found: dict[int, Deletion] = {}
    for key in location.list(prefix + "/deletions"):
        try:
            entry = orjson.loads(location.get(f"{prefix}/deletions/{key}"))
            for item in entry["segments"]:
                found[int(item["seq"])] = Deletion(int(item["seq"]), str(item["name"]), str(item["sha256"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, StoreError):
            continue  # an unreadable ledger entry accounts for nothing: its segments count as missing
    return found


def list_chains(location: locations.Location, namespace: str, deployment: str) -> list[str]:
    base = locations.deployment_prefix(namespace, deployment)
    return sorted({key.split("/", 1)[0] for key in location.list(base) if "/" in key})


def verify(
    location: locations.Location,
    namespace: str,
    deployment: str,
    visit: RecordVisitor | None = None,
    keep: Callable[[segments.Name], bool] | None = None,
) -> Report:
    """Verify every chain of the Deployment; ``visit`` sees each record of each intact segment
    that ``keep`` (by name) selects."""
    report = Report(namespace, deployment)
    for chain in list_chains(location, namespace, deployment):
        report.chains.append(chain)
        _verify_chain(
            location,
            namespace=namespace,
            deployment=deployment,
            chain=chain,
            report=report,
            visit=visit,
            keep=keep,
        )
    return report


def _segment_names(
    location: locations.Location, prefix: str, chain: str, report: Report
) -> Iterator[tuple[segments.Name, str]]:
    for key in location.list(prefix + "/segments"):
        try:
            yield segments.parse_name(key), key
        except segments.SegmentError as error:
            report.findings.append(Finding("altered", chain, key, f"foreign object in the chain: {error}"))


def _verify_chain(
    location: locations.Location,
    *,
    namespace: str,
    deployment: str,
    chain: str,
    report: Report,
    visit: RecordVisitor | None,
    keep: Callable[[segments.Name], bool] | None,
) -> None:
    prefix = locations.chain_prefix(namespace, deployment, chain)
    expired = deletions(location, prefix)
    named = sorted(_segment_names(location, prefix, chain, report))
    by_seq: dict[int, str] = {}
    for name, key in named:
        if name.seq in by_seq:
            report.findings.append(Finding("duplicated", chain, key, f"a second segment numbered {name.seq}"))
            continue
        by_seq[name.seq] = key
    last_seq = max([*by_seq, *expired], default=-1)
    report.expired += sum(1 for seq in expired if seq not in by_seq)
    previous_sha: str | None = None  # sha256 of segment seq-1, when known
    previous_key: str | None = None
    epochs: list[tuple[str, str, str]] = []  # (epoch, last kind, last segment key), in order
    streams: dict[str, list[int]] = {}
    for seq in range(last_seq + 1):
        found = by_seq.get(seq)
        if found is None:
            deletion = expired.get(seq)
            if deletion is None:
                report.findings.append(
                    Finding("missing", chain, f"#{seq}", f"segment {seq} is missing{_between(by_seq, seq)}")
                )
                previous_sha, previous_key = None, None
            else:
                previous_sha, previous_key = deletion.sha256, deletion.name
            continue
        key = found
        try:
            stored = location.get(f"{prefix}/segments/{key}")
            segment = segments.decode(key, stored)
        except segments.SegmentError as error:
            kind: FindingKind = "misplaced" if "the name" in str(error) else "altered"
            report.findings.append(Finding(kind, chain, key, str(error)))
            previous_sha, previous_key = None, key
            continue
        except StoreError as error:
            report.findings.append(Finding("missing", chain, key, f"listed but unreadable: {error}"))
            previous_sha, previous_key = None, None
            continue
        header = segment.header
        report.segments += 1
        expected_prev = segments.GENESIS if seq == 0 else previous_sha
        if expected_prev is not None and header.prev_sha256 != expected_prev and previous_key is not None:
            report.findings.append(
                Finding(
                    "altered",
                    chain,
                    previous_key,
                    f"its sha256 is {expected_prev}, but the next segment ({key}) recorded "
                    f"{header.prev_sha256}: it was changed after it was written",
                )
            )
        elif seq == 0 and header.prev_sha256 != segments.GENESIS:
            report.findings.append(
                Finding("altered", chain, key, "the first segment does not start the chain")
            )
        if (header.namespace, header.deployment, header.chain) != (namespace, deployment, chain):
            report.findings.append(
                Finding(
                    "misplaced",
                    chain,
                    key,
                    f"it belongs to {header.namespace}/{header.deployment}/{header.chain}",
                )
            )
        previous_sha, previous_key = segment.sha256, key
        if epochs and epochs[-1][0] == header.epoch:
            epochs[-1] = (header.epoch, header.kind, key)
        else:
            epochs.append((header.epoch, header.kind, key))
        report.records += header.records
        for record in segment.records:
            stream, number = record.get("stream"), record.get("seq")
            if isinstance(stream, str) and isinstance(number, int):
                streams.setdefault(stream, []).append(number)
        if visit is not None and (keep is None or keep(segments.parse_name(key))):
            for record in segment.records:
                visit(header, record)
    for index, (epoch, last_kind, last_key) in enumerate(epochs):
        if last_kind == "close":
            continue
        if index + 1 < len(epochs):
            report.findings.append(
                Finding(
                    "unclean_end",
                    chain,
                    last_key,
                    f"writer epoch {epoch} stopped without closing after this segment "
                    "(killed or crashed): the decisions it held in memory were lost",
                )
            )
        else:
            report.findings.append(
                Finding(
                    "open",
                    chain,
                    last_key,
                    f"writer epoch {epoch} has not closed: still writing, or killed after this segment",
                )
            )
    truncated = any(seq not in by_seq for seq in expired)
    for stream, numbers in sorted(streams.items()):
        _stream_findings(chain, stream, numbers, report, starts_at_zero=not truncated)


def _between(by_seq: dict[int, str], seq: int) -> str:
    before = max((s for s in by_seq if s < seq), default=None)
    after = min((s for s in by_seq if s > seq), default=None)
    parts = []
    if before is not None:
        parts.append(f"after {by_seq[before]}")
    if after is not None:
        parts.append(f"before {by_seq[after]}")
    return f" ({', '.join(parts)})" if parts else ""


def _stream_findings(
    chain: str, stream: str, numbers: list[int], report: Report, *, starts_at_zero: bool
) -> None:
    numbers.sort()
    if starts_at_zero and numbers[0] > 0:
        numbers.insert(0, -1)  # every stream starts at 0: rows before the first logged one were lost
    duplicates = sum(1 for a, b in itertools.pairwise(numbers) if a == b)
    if duplicates:
        report.findings.append(
            Finding("duplicated", chain, "", f"stream {stream}: {duplicates} decisions recorded twice")
        )
    ranges: list[tuple[int, int]] = []
    missing = 0
    for a, b in itertools.pairwise(numbers):
        if b > a + 1:
            missing += b - a - 1
            ranges.append((a + 1, b - 1))
    if missing:
        shown = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in ranges[:_MAX_RANGES])
        more = f" and {len(ranges) - _MAX_RANGES} more ranges" if len(ranges) > _MAX_RANGES else ""
        report.findings.append(
            Finding(
                "lost_records",
                chain,
                "",
                f"stream {stream}: {missing} scored rows were never logged (seq {shown}{more})",
            )
        )
