"""Retention: delete whole expired segments, oldest first, and record each deletion.

A segment expires when its last decision is older than the retention (the Deployment's
``decisionLog.retention``, 180 days by default). Only a run of expired segments at the start of
a chain is deleted, never a segment after a kept one, and never a part of a segment. Before
anything is deleted, a ledger entry ``deletions/<first>-<last>.json`` lists each segment's name,
number and sha256, so the verifier reports them as expired rather than missing, and still checks
that the first kept segment links to the last deleted one.
"""

from __future__ import annotations

import re

import orjson

from mlsteward.audit import chains, locations, segments
from mlsteward.store.errors import StoreError


def parse_retention(text: str) -> float:
    """``180d`` / ``4320h`` / ``1d12h`` -> seconds."""
    parts = re.findall(r"([0-9]+)(s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid retention {text!r}: expected e.g. 180d, 4320h or 1d12h")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    return float(sum(int(n) * unit[u] for n, u in parts))


def expire(
    location: locations.Location, namespace: str, deployment: str, retention_s: float, now: float
) -> list[str]:
    """Delete the expired segments of every chain of the Deployment; return their names."""
    deleted: list[str] = []
    cutoff = now - retention_s
    for chain in chains.list_chains(location, namespace, deployment):
        prefix = locations.chain_prefix(namespace, deployment, chain)
        named = []
        for key in location.list(prefix + "/segments"):
            try:
                named.append((segments.parse_name(key), key))
            except segments.SegmentError:
                continue  # not ours to delete: the verifier reports it
        named.sort()
        known = chains.deletions(location, prefix)
        due: list[tuple[segments.Name, str]] = []
        for name, key in named:
            if name.last_time >= cutoff:
                break
            due.append((name, key))
        if not due:
            continue
        entries = []
        for name, key in due:
            try:
                stored = location.get(f"{prefix}/segments/{key}")
            except StoreError:
                continue
            entries.append({"seq": name.seq, "name": key, "sha256": segments.stored_sha256(stored)})
        fresh = [entry for entry in entries if entry["seq"] not in known]
        if fresh:
            ledger = {"deleted_at": now, "retention_seconds": retention_s, "segments": fresh}
            ledger_key = f"{prefix}/deletions/{fresh[0]['seq']:012d}-{fresh[-1]['seq']:012d}.json"
            try:
                location.put(ledger_key, orjson.dumps(ledger, option=orjson.OPT_SORT_KEYS))
            except StoreError:
                if ledger_key.rsplit("/", 1)[-1] not in location.list(prefix + "/deletions"):
                    raise  # another replica wrote the same entry otherwise
        for entry in entries:
            location.delete(f"{prefix}/segments/{entry['name']}")
            deleted.append(str(entry["name"]))
    return deleted
