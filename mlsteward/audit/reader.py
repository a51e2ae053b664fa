"""Reading decisions back: a time range (and optionally one request id), with the chain verified.

Every segment of the Deployment is read and hashed (the chain can only be checked whole);
records are kept only from segments whose time span meets ``[start, end]`` and only when their
own time falls in it. Each decision comes back with the Deployment, the chain and the segment it
was found in, so an auditor can point at the evidence.
"""

from __future__ import annotations

from typing import Any

from mlsteward.audit import chains, locations, segments


def decisions(
    location: locations.Location,
    *,
    namespace: str,
    deployment: str,
    start: float,
    end: float,
    request_id: str | None = None,
) -> tuple[list[dict[str, Any]], chains.Report]:
    """Decisions with ``start <= time <= end`` (seconds since the epoch), oldest first."""
    found: list[dict[str, Any]] = []

    def keep(name: segments.Name) -> bool:
        return name.last_time >= start and name.first_time <= end

    def visit(header: segments.Header, record: dict[str, Any]) -> None:
        moment = record.get("time")
        if not isinstance(moment, int | float) or not start <= moment <= end:
            return
        if request_id is not None and record.get("request_id") != request_id:
            return
        found.append(
            {
                "namespace": header.namespace,
                "deployment": header.deployment,
                "chain": header.chain,
                "segment": header.seq,
                **record,
            }
        )

    report = chains.verify(location, namespace, deployment, visit=visit, keep=keep)
    found.sort(key=lambda record: (record["time"], record["chain"], record.get("seq", 0)))
    return found, report
