"""The decision-log policy of a ``Deployment``: what is recorded for audit, and for how long."""

from __future__ import annotations

import pydantic

from mlsteward.api import base

# Go-style durations plus days, for retention: 180d, 4320h, 1d12h.
RETENTION_PATTERN = r"^([0-9]+(s|m|h|d))+$"


class DecisionLogPolicy(base.ApiModel):
    """Durable, hash-chained record of every scored request, written off the request path."""

    enabled: bool = True
    """Record every scored request (time, request id, version, artifact digest, input digest,
    output, reason codes, route)."""
    log_inputs: bool = False
    """Also record the input features themselves; off by default (data minimisation): the
    sha256 of each row's canonical bytes is always recorded."""
    retention: str = pydantic.Field(default="180d", pattern=RETENTION_PATTERN, max_length=32)
    """How long segments are kept before whole expired segments are deleted (default 180 days,
    the EU AI Act minimum for deployers' logs)."""
    flush_interval_seconds: float = pydantic.Field(default=10.0, ge=0.1, le=3600)
    """Longest a decision waits in memory before its segment is written; a crash loses at most
    this much (and the loss is visible in the chain)."""
    segment_max_records: int = pydantic.Field(default=20_000, ge=1, le=10_000_000)
    """Write a segment as soon as it holds this many decisions."""
    max_queued_records: int = pydantic.Field(default=50_000, ge=1, le=10_000_000)
    """Decisions buffered while the store is slow; beyond this they are dropped and counted in
    mlsteward_audit_decisions_dropped_total, never blocking a prediction."""
