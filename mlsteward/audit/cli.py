"""``mlsteward audit decisions``: read a Deployment's decisions back and verify their chain.

Usage::

    mlsteward audit decisions --store s3://bucket/prefix --deployment credit --namespace risk \\
        --from 2026-12-01T00:00:00Z --to 2026-12-02T00:00:00Z [--request-id R] [--format table|json]

Exit codes: 0 when the chain is intact (losses from crashes or dropped rows are reported but
are not tampering), 3 when a segment is missing, altered, misplaced or duplicated, 2 for bad
flags or an unreachable store.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from mlsteward.audit import chains, locations, reader
from mlsteward.store.errors import StoreError

EXIT_TAMPERED = 3


def parse_time(text: str, flag: str) -> float:
    """RFC 3339 (``2026-12-01T00:00:00Z``), a date (``2026-12-01``, UTC) or seconds since the epoch."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(
            f"{flag}: {text!r} is not RFC 3339 (2026-12-01T00:00:00Z) or epoch seconds"
        ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="mlsteward audit", description="Audit evidence (docs/audit.md).")
    commands = result.add_subparsers(dest="command", required=True)
    decisions = commands.add_parser("decisions", help="read and verify a Deployment's decision log")
    decisions.add_argument("--store", required=True, help="/path, file:// or s3://bucket/prefix")
    decisions.add_argument("--deployment", required=True, help="the mlsteward Deployment's name")
    decisions.add_argument("--namespace", default="default", help="its namespace (default: default)")
    decisions.add_argument("--from", dest="start", required=True, help="RFC 3339 time or epoch seconds")
    decisions.add_argument("--to", dest="end", required=True, help="RFC 3339 time or epoch seconds")
    decisions.add_argument("--request-id", default=None, help="only this request's decisions")
    decisions.add_argument("--format", choices=("table", "json"), default="table")
    return result


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
        if end < start:
            raise ValueError(f"--to ({args.end}) is before --from ({args.start})")
        location = locations.open_location(args.store)
        found, report = reader.decisions(
            location,
            namespace=locations.check_part("--namespace", args.namespace),
            deployment=locations.check_part("--deployment", args.deployment),
            start=start,
            end=end,
            request_id=args.request_id,
        )
    except (ValueError, StoreError) as error:
        print(f"mlsteward audit: {error}", file=sys.stderr)
        return 2
    if args.format == "json":
        document = {"verification": report.to_json(), "decisions": found}
        sys.stdout.buffer.write(
            orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
        )
    else:
        print(render_table(found, report))
    return EXIT_TAMPERED if report.tampered else 0


def _iso(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="milliseconds")


def render_table(found: list[dict[str, Any]], report: chains.Report) -> str:
    header = (
        "time",
        "request id",
        "route",
        "version",
        "model digest",
        "label",
        "score",
        "input sha256",
        "reasons",
    )
    rows = [header]
    for record in found:
        output = record.get("output") or {}
        score = output.get("score")
        rows.append(
            (
                _iso(record.get("time")),
                str(record.get("request_id")),
                str(record.get("route")),
                str(record.get("model_version")),
                str(record.get("model_digest") or "")[:12],
                str(output.get("label")),
                f"{score:.4f}" if isinstance(score, float) else str(score),
                str(record.get("input_sha256", "")).removeprefix("sha256:")[:16],
                ",".join(record.get("reason_codes") or []),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.append("")
    lines.append(
        f"{len(found)} decisions; chain {report.verdict}: {len(report.chains)} chain(s), "
        f"{report.segments} segments, {report.records} records, {report.expired} expired by retention"
    )
    lines.extend(
        f"  {f.kind}: {f.chain} {f.segment}: {f.message}".replace("  ", " ", 1) for f in report.findings
    )
    return "\n".join(lines)
