"""End to end: ``mlsteward monitor`` as a process, batches POSTed over HTTP on 127.0.0.1.

Usage: python http_ingest.py PROFILE.json ROWS BATCH. Prints one JSON line: client wall
time, rows/s, and the server process's CPU seconds (from /proc) per row. Bodies are
encoded before the clock starts; one keep-alive client posts them one after another.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import common
import httpx
import orjson

from mlsteward.store import artifacts


def _cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    profile, rows, batch = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with tempfile.TemporaryDirectory() as work:
        ref = artifacts.write_artifact(pathlib.Path(work), {"profile.json": profile.read_bytes()})
        assert ref.path is not None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = pathlib.Path(work) / "monitor.json"
        config.write_text(json.dumps({"window": {"size": rows, "minSamples": 1000}}))
        server = subprocess.Popen(
            [sys.executable, "-m", "mlsteward", "monitor", "--profile-artifact", str(ref.path), "--digest",
             ref.digest, "--port", str(port), "--config", str(config), "--log-level", "warning"],
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
                bodies = []
                for part in common.current_chunks(rows):
                    n = len(part["n00"])
                    for start in range(0, n, batch):
                        stop = min(start + batch, n)
                        features = {k: part[k][start:stop] for k in common.NUMERIC + common.CATEGORICAL}
                        document = {
                            "model_version": "1",
                            "route": "champion",
                            "features": features,
                            "prediction": {},
                        }
                        bodies.append(orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY))
                cpu_before = _cpu_seconds(server.pid)
                began = time.perf_counter()
                for body in bodies:
                    response = client.post(url + "/v1/rows", content=body)
                    assert response.status_code == 202, response.text
                elapsed = time.perf_counter() - began
                cpu = _cpu_seconds(server.pid) - cpu_before
                summary = client.get(url + "/summary").json()
        finally:
            server.terminate()
            server.wait(timeout=30)
    drifted = sorted(f["name"] for f in summary["evaluation"]["features"] if f["state"] == "drift")
    result = {"rows": rows, "batch": batch, "seconds": elapsed, "rows_per_s": rows / elapsed}
    result |= {"server_cpu_seconds": cpu, "server_rows_per_cpu_s": rows / cpu, "drifted": drifted}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
