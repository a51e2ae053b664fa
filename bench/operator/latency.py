"""Create -> Job latency of the operator, against the control-plane floor and a minimal kopf operator.

Starts its own local control plane, then for each count N and each mode:

- ``floor``: the client POSTs N (suspended) Jobs itself; latency is POST start -> the Job's
  ADDED event on a watch (what any controller pays at least);
- ``kopf-minimal``: bench/operator/minimal_operator.py (one kopf create handler, one POST);
- ``mlsteward``: ``mlsteward operator`` (level-based reconcile, server-side apply, status, Events).

For the operators, latency is Model POST start -> the Job's ADDED event. Prints p50/p95/p99/max
in milliseconds and the operator's RSS at rest. Usage::

    .venv/bin/python bench/operator/latency.py --counts 1,100,1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp

from mlsteward.dev import controlplane, toolchain

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _model(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "task": "classification",
            "dataset": {"uri": "/data/x.csv", "target": "y", "features": ["a", "b"]},
            "estimator": {"className": "LogisticRegression"},
        },
    }


def _job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{name}-v1"},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "train", "image": "mlsteward:0.1.0"}],
                }
            },
        },
    }


class Api:
    def __init__(self, cp: controlplane.ControlPlane) -> None:
        pki = cp.directory / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.server = cp.server
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=32), timeout=aiohttp.ClientTimeout(total=None)
        )

    async def post(self, path: str, body: dict[str, Any]) -> None:
        async with self.session.post(self.server + path, json=body) as response:
            if response.status >= 300:
                raise RuntimeError(f"POST {path}: {response.status} {await response.text()}")

    async def watch_jobs(
        self, namespace: str, seen: dict[str, float], want: int, done: asyncio.Event
    ) -> None:
        url = f"{self.server}/apis/batch/v1/namespaces/{namespace}/jobs?watch=1&allowWatchBookmarks=false"
        async with self.session.get(url) as response:
            async for line in response.content:
                event = json.loads(line)
                name = event["object"]["metadata"]["name"]
                if event["type"] == "ADDED" and name not in seen:
                    seen[name] = time.perf_counter()
                    if len(seen) >= want:
                        done.set()
                        return


def _rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _run(cp: controlplane.ControlPlane, mode: str, count: int, timeout_s: float) -> dict[str, Any]:
    namespace = f"bench-{mode}-{count}-{int(time.time())}"
    cp.kubectl("create", "namespace", namespace)
    process = None
    if mode != "floor":
        command = (
            [
                sys.executable,
                "-m",
                "mlsteward",
                "operator",
                "--namespaces",
                namespace,
                "--log-level",
                "WARNING",
            ]
            if mode == "mlsteward"
            else [sys.executable, str(ROOT / "bench" / "operator" / "minimal_operator.py"), namespace]
        )
        log = open(tempfile.mktemp(prefix=f"{mode}-", suffix=".log"), "wb")  # noqa: SIM115
        process = subprocess.Popen(command, env=cp.env(), stdout=log, stderr=subprocess.STDOUT)
        await asyncio.sleep(4)  # started and watching
    api = Api(cp)
    seen: dict[str, float] = {}
    started: dict[str, float] = {}
    done = asyncio.Event()
    watcher = asyncio.create_task(api.watch_jobs(namespace, seen, count, done))
    await asyncio.sleep(0.5)
    semaphore = asyncio.Semaphore(16)

    async def create(i: int) -> None:
        name = f"m{i}"
        async with semaphore:
            started[f"{name}-v1"] = time.perf_counter()
            if mode == "floor":
                await api.post(f"/apis/batch/v1/namespaces/{namespace}/jobs", _job(name))
            else:
                await api.post(f"/apis/mlsteward.io/v1alpha1/namespaces/{namespace}/models", _model(name))

    begun = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(count)))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout_s)
    total = time.perf_counter() - begun
    watcher.cancel()
    latencies = sorted((seen[n] - started[n]) * 1000 for n in started if n in seen)
    result: dict[str, Any] = {"mode": mode, "count": count, "jobs": len(latencies), "total_s": total}
    if latencies:
        quantiles = (
            statistics.quantiles(latencies, n=100, method="inclusive")
            if len(latencies) > 1
            else latencies * 99
        )
        result.update(p50=quantiles[49], p95=quantiles[94], p99=quantiles[98], max=latencies[-1])
    if process is not None:
        await asyncio.sleep(5)
        result["rss_mib"] = _rss_mib(process.pid)
        process.terminate()
        process.wait(timeout=30)
    await api.session.close()
    cp.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,100")
    parser.add_argument("--modes", default="floor,kopf-minimal,mlsteward")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    directory = pathlib.Path(tempfile.mkdtemp(prefix="bench-operator-"))
    cp = controlplane.up(directory, fake_nodes=1, tools=toolchain.build())
    try:
        cp.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        rows = []
        for count in (int(c) for c in args.counts.split(",")):
            for mode in args.modes.split(","):
                row = asyncio.run(_run(cp, mode, count, args.timeout))
                rows.append(row)
                print(json.dumps(row), flush=True)
        header = ("mode", "N", "jobs", "p50 ms", "p95 ms", "p99 ms", "max ms", "RSS MiB")
        print("\n" + f"{header[0]:<14}" + "".join(f"{h:>10}" for h in header[1:]))
        for r in rows:
            print(
                f"{r['mode']:<14}{r['count']:>10}{r['jobs']:>10}{r.get('p50', float('nan')):>10.0f}"
                f"{r.get('p95', float('nan')):>10.0f}{r.get('p99', float('nan')):>10.0f}"
                f"{r.get('max', float('nan')):>10.0f}{r.get('rss_mib', float('nan')):>10.1f}"
            )
        print(f"\nmachine: {os.cpu_count()} CPUs, load {os.getloadavg()}")
    finally:
        controlplane.down(directory)


if __name__ == "__main__":
    main()
