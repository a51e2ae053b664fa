"""End to end: ``mlsteward monitor`` as a process, batches POSTed over HTTP on 127.0.0.1.

Usage::

    python http_ingest.py PROFILE.json ROWS BATCH          # JSON bodies of the drift data
    python http_ingest.py --server-bodies 32 ROWS          # the server's binary bodies

Prints one JSON line: client wall time, rows/s, and the sidecar process's CPU seconds (from
/proc) per row. Bodies are encoded before the clock starts; one keep-alive client posts them
one after another. ``--server-bodies N`` sends what ``mlsteward serve`` sends for requests of
``N`` rows (``sidecar_path.server_bodies``: 1,024-row binary bodies with request ids, labels and
scores, against the reference of bench/serving/monitor_cost.py) at the default 10,000-row
tumbling window, and posts labels for every tenth request of every tenth body, as the real
path does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import common
import httpx
import orjson
import sidecar_path

from mlsteward.monitoring import batches
from mlsteward.store import artifacts


def _cpu_seconds(pid: int) -> float:
    return sum(_user_system_seconds(pid))


def _user_system_seconds(pid: int) -> tuple[float, float]:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


def json_bodies(rows: int, batch: int) -> list[bytes]:
    bodies = []
    for part in common.current_chunks(rows):
        n = len(part["n00"])
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            features = {k: part[k][start:stop] for k in common.NUMERIC + common.CATEGORICAL}
            document = {"model_version": "1", "route": "champion", "features": features, "prediction": {}}
            bodies.append(orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY))
    return bodies


def run(
    files: dict[str, bytes],
    config: dict[str, Any],
    bodies: list[bytes],
    content_type: str,
    *,
    labels: list[bytes | None],
    rate: float = 0.0,
) -> tuple[float, float, dict[str, Any]]:
    """Post ``bodies`` (and after each, its label body if any) to a fresh sidecar: wall s, CPU s, summary."""
    with tempfile.TemporaryDirectory() as work:
        ref = artifacts.write_artifact(pathlib.Path(work), files)
        assert ref.path is not None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config_path = pathlib.Path(work) / "monitor.json"
        config_path.write_text(json.dumps(config))
        server = subprocess.Popen(
            [sys.executable, "-m", "mlsteward", "monitor", "--profile-artifact", str(ref.path), "--digest",
             ref.digest, "--port", str(port), "--config", str(config_path), "--log-level", "warning"],
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=30.0) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if client.get(url + "/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                headers = {"content-type": content_type}
                cpu_before = _cpu_seconds(server.pid)
                began = time.perf_counter()
                for number, (body, label_body) in enumerate(zip(bodies, labels, strict=True)):
                    if rate:  # paced like a server's feed rather than back to back
                        time.sleep(max(0.0, began + number / rate - time.perf_counter()))
                    response = client.post(url + "/v1/rows", content=body, headers=headers)
                    assert response.status_code == 202, response.text
                    if label_body is not None:
                        response = client.post(url + "/v1/labels", content=label_body)
                        assert response.status_code == 202, response.text
                elapsed = time.perf_counter() - began
                cpu = _cpu_seconds(server.pid) - cpu_before
                summary = client.get(url + "/summary").json()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return elapsed, cpu, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-bodies", type=int, metavar="REQUEST_ROWS", default=0)
    parser.add_argument("--rate", type=float, default=0.0, help="bodies per second (0: back to back)")
    parser.add_argument("args", nargs="+", help="PROFILE.json ROWS BATCH, or ROWS with --server-bodies")
    options = parser.parse_args()
    result: dict[str, Any]
    if options.server_bodies:
        rows, request_rows = int(options.args[0]), options.server_bodies
        bodies, ids = sidecar_path.server_bodies(rows, request_rows)
        posts = sidecar_path.label_posts(ids, request_rows)
        labels = [None if p is None else orjson.dumps(dataclasses.asdict(p)) for p in posts]
        files = {"profile.json": artifacts.canonical_json(sidecar_path.reference_document())}
        files["schema.json"] = artifacts.canonical_json(sidecar_path.SCHEMA)
        config = {"window": {"size": 10_000, "minSamples": 1000}}
        elapsed, cpu, summary = run(
            files, config, bodies, batches.BINARY_CONTENT_TYPE, labels=labels, rate=options.rate
        )
        joined = summary["labels"]["joined"]
        result = {"rows": rows, "request_rows": request_rows, "batch": sidecar_path.BATCH_ROWS}
        result |= {"labels_joined": joined, "labels_posted": sum(len(p.request_ids) for p in posts if p)}
    else:
        profile, rows, batch = pathlib.Path(options.args[0]), int(options.args[1]), int(options.args[2])
        bodies = json_bodies(rows, batch)
        config = {"window": {"size": rows, "minSamples": 1000}}
        elapsed, cpu, summary = run(
            {"profile.json": profile.read_bytes()},
            config,
            bodies,
            "application/json",
            labels=[None] * len(bodies),
        )
        drifted = sorted(f["name"] for f in summary["evaluation"]["features"] if f["state"] == "drift")
        result = {"rows": rows, "batch": batch, "drifted": drifted}
    result |= {"seconds": elapsed, "rows_per_s": rows / elapsed, "server_cpu_seconds": cpu}
    result |= {"server_rows_per_cpu_s": rows / cpu, "server_cpu_us_per_row": cpu / rows * 1e6}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
