"""The Deployment's serving history: an append-only list of records chained by sha256.

Each record carries exactly ``version, digest, at, action, reason, approvedBy, previousHash,
hash``. ``hash`` is the sha256 hex of the canonical JSON (sorted keys, compact, UTF-8) of the
record without ``hash``, where ``previousHash`` is the hash of the record before it (null for
the first). Editing, reordering or removing any record but the last breaks the chain, and
:func:`verify` says where. Pure: no I/O, no clock (callers pass the time).
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

KEYS = ("version", "digest", "at", "action", "reason", "approvedBy", "previousHash")
ACTIONS = ("started", "promoted", "rolledBack", "killSwitch")
Record = dict[str, Any]


def record_hash(record: Record) -> str:
    """sha256 of the canonical JSON of the record's fields other than ``hash`` (absent = null)."""
    canonical = {key: record.get(key) for key in KEYS}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def append(
    history: Sequence[Record],
    *,
    version: int,
    digest: str,
    at: str,
    action: str,
    reason: str,
    approved_by: str | None = None,
) -> list[Record]:
    """A new list: ``history`` and one more record chained to its last one."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    record: Record = {
        "version": version,
        "digest": digest,
        "at": at,
        "action": action,
        "reason": reason[:1024],
        "approvedBy": approved_by,
        "previousHash": history[-1].get("hash") if history else None,
    }
    record["hash"] = record_hash(record)
    return [*history, record]


def verify(history: Sequence[Record]) -> list[str]:
    """Every break in the chain, as sentences naming the record (empty: intact)."""
    problems = []
    previous: str | None = None
    for index, record in enumerate(history):
        if record.get("previousHash") != previous:
            problems.append(
                f"history[{index}] (version {record.get('version')}, {record.get('at')}): previousHash "
                f"{record.get('previousHash')} is not the hash of the record before it ({previous})"
            )
        expected = record_hash(record)
        if record.get("hash") != expected:
            problems.append(
                f"history[{index}] (version {record.get('version')}, {record.get('at')}): its content "
                f"does not match its hash (edited): stored {record.get('hash')}, computed {expected}"
            )
        previous = record.get("hash")
    return problems


def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 time (``Z`` or an offset); naive times are taken as UTC."""
    value = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


def served_at(history: Sequence[Record], when: datetime.datetime) -> Record | None:
    """The record in force at ``when``: the last one at or before it (None: nothing served yet)."""
    found = None
    for record in history:
        if parse_time(str(record["at"])) <= when:
            found = record
    return found


def last_served_before(history: Sequence[Record], version: int) -> Record | None:
    """The newest record whose version is not ``version``: where a rollback of it goes back to."""
    return next((r for r in reversed(history) if r.get("version") != version), None)
