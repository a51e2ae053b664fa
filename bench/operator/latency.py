"""Create -> Job latency of the operator, against the control-plane floor and a minimal kopf operator.

Starts its own local control plane, then for each count N and each mode:

- ``floor``: the client POSTs N Jobs itself; latency is POST start -> the Job's ADDED event on
  a watch (what any controller pays at least);
- ``models``: the client POSTs the N Models, no operator runs; "latency" is the POST's round
  trip, and "all Jobs" the time until all N Models exist: no operator's Jobs can be sooner;
- ``chained``: the client POSTs each Model and, as soon as it is created, its Job: an operator
  with zero cost of its own (no watch delay, no reads) could not be faster than this;
- ``kopf-minimal``: bench/operator/minimal_operator.py (one kopf create handler, one POST);
- ``mlsteward``: ``mlsteward operator`` (level-based reconcile, Job, status, Events);
- ``baseline``: ``mlsteward operator`` from the checkout at ``$MLSTEWARD_BENCH_BASELINE_TREE``
  (``git worktree add /tmp/base <commit>``), to compare a change in the same run.

For the operators, latency is Model POST start -> the Job's ADDED event. Every namespace has a
ResourceQuota of zero pods, so no mode's Jobs start pods: the figures are the controllers' own.

Prints, per mode and N: p50/p95/p99/max in milliseconds, the seconds until all N Jobs exist,
the operator's RSS and CPU at rest (once idle, over a 10 s window), and the restart to idle with
the N Models present: a fresh process from spawn until a full second passes with under 2% of a
CPU, and the Model or Job writes it made meanwhile. The floor's "restart" is a fresh Python
process that lists its N Jobs and exits. Each figure also as a ratio to the floor's. Usage::

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
        """Record each new Job's arrival; a watch the server ends is resumed where it was."""
        url = f"{self.server}/apis/batch/v1/namespaces/{namespace}/jobs"
        async with self.session.get(url, params={"limit": "1"}) as response:
            version = (await response.json())["metadata"]["resourceVersion"]
        while True:
            params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "false"}
            async with self.session.get(url, params=params) as response:
                async for line in response.content:
                    event = json.loads(line)
                    if event["type"] == "ERROR":  # too old: list afresh (rare)
                        async with self.session.get(url) as listing:
                            body = await listing.json()
                        version = body["metadata"]["resourceVersion"]
                        for item in body["items"]:
                            seen.setdefault(item["metadata"]["name"], time.perf_counter())
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
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


def _sockets(pid: int) -> int:
    """Open sockets of ``pid`` (its API connections, mostly)."""
    fds = pathlib.Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _idle_after(pid: int, since: float, limit_s: float) -> float:
    """Seconds from ``since`` until the start of the first full second in which ``pid`` used
    under 2% of a CPU (``limit_s`` when it never went quiet)."""
    samples: list[tuple[float, float]] = []
    while time.perf_counter() - since < limit_s:
        samples.append((time.perf_counter(), _cpu_s(pid)))
        while len(samples) > 1 and samples[-1][0] - samples[1][0] >= 1.0:
            samples.pop(0)
        first, last = samples[0], samples[-1]
        if last[0] - first[0] >= 1.0 and last[1] - first[1] < 0.02:
            return first[0] - since
        await asyncio.sleep(0.05)
    return limit_s


_QUOTA = {
    "apiVersion": "v1",
    "kind": "ResourceQuota",
    "metadata": {"name": "no-pods"},
    "spec": {"hard": {"pods": "0"}},
}

_LIST_MODELS = """
import asyncio, ssl, sys, aiohttp
async def main():
    server, ca, cert, key, path = sys.argv[1:]
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        async with session.get(server + path) as response:
            body = await response.json()
            if response.status != 200:
                sys.exit(f"GET {path}: {response.status} {body}")
            print(len(body["items"]))
asyncio.run(main())
"""


def _operator_command(mode: str, namespace: str) -> list[str]:
    if mode in {"mlsteward", "baseline"}:
        return [
            sys.executable,
            "-m",
            "mlsteward",
            "operator",
            "--namespaces",
            namespace,
            "--log-level",
            os.environ.get("MLSTEWARD_BENCH_OPERATOR_LOG_LEVEL", "WARNING"),
        ]
    return [sys.executable, str(ROOT / "bench" / "operator" / "minimal_operator.py"), namespace]


def _spawn(cp: controlplane.ControlPlane, mode: str, namespace: str) -> subprocess.Popen[bytes]:
    log = open(tempfile.mktemp(prefix=f"{mode}-", suffix=".log"), "wb")  # noqa: SIM115
    env, cwd = cp.env(), None
    if mode == "baseline":
        # The operator of another checkout (e.g. `git worktree add /tmp/base HEAD~1`), measured
        # in the same run as this one: the only fair comparison on a shared machine. `python -m`
        # puts the working directory first on sys.path, ahead of the editable install.
        cwd = os.environ["MLSTEWARD_BENCH_BASELINE_TREE"]
    return subprocess.Popen(
        _operator_command(mode, namespace), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
    )


class _Writes:
    """Counts Model writes and new Jobs (watch events) in a namespace from now on."""

    def __init__(self, api: Api, namespace: str) -> None:
        self.count = 0
        self._tasks = [
            asyncio.create_task(self._watch(api, f"/apis/{group}/namespaces/{namespace}/{plural}"))
            for group, plural in (("mlsteward.io/v1alpha1", "models"), ("batch/v1", "jobs"))
        ]

    async def _watch(self, api: Api, url_path: str) -> None:
        async with api.session.get(api.server + url_path, params={"limit": "1"}) as response:
            version = (await response.json())["metadata"]["resourceVersion"]
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "false"}
        async with api.session.get(api.server + url_path, params=params) as response:
            async for line in response.content:
                event = json.loads(line)
                # The Job controller's own status updates are not the operator's writes.
                if event["object"]["kind"] == "Model" or event["type"] == "ADDED":
                    self.count += 1

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


async def _restart_floor(cp: controlplane.ControlPlane, namespace: str) -> float:
    pki = cp.directory / "pki"
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    command = [sys.executable, "-c", _LIST_MODELS, cp.server, str(pki / "ca.crt"), str(pki / "admin.crt")]
    begun = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command, str(pki / "admin.key"), path, stdout=subprocess.DEVNULL
    )
    await process.wait()
    return time.perf_counter() - begun


async def _run(
    cp: controlplane.ControlPlane, mode: str, count: int, timeout_s: float, restart: bool
) -> dict[str, Any]:
    namespace = f"bench-{mode}-{count}-{int(time.time())}"
    cp.kubectl("create", "namespace", namespace)
    cp.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(_QUOTA))
    process = None
    if mode not in {"floor", "models", "chained"}:
        process = _spawn(cp, mode, namespace)
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
            if mode == "models":
                await api.post(f"/apis/mlsteward.io/v1alpha1/namespaces/{namespace}/models", _model(name))
                seen[f"{name}-v1"] = time.perf_counter()
            elif mode == "floor":
                await api.post(f"/apis/batch/v1/namespaces/{namespace}/jobs", _job(name))
            elif mode == "chained":
                await api.post(f"/apis/mlsteward.io/v1alpha1/namespaces/{namespace}/models", _model(name))
                await api.post(f"/apis/batch/v1/namespaces/{namespace}/jobs", _job(name))
            else:
                await api.post(f"/apis/mlsteward.io/v1alpha1/namespaces/{namespace}/models", _model(name))

    begun = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(count)))
    if mode == "models":
        done.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout_s)
    total = time.perf_counter() - begun
    watcher.cancel()
    latencies = sorted((seen[n] - started[n]) * 1000 for n in started if n in seen)
    result: dict[str, Any] = {"mode": mode, "count": count, "jobs": len(latencies), "all_jobs_s": total}
    if latencies:
        quantiles = (
            statistics.quantiles(latencies, n=100, method="inclusive")
            if len(latencies) > 1
            else latencies * 99
        )
        result.update(p50=quantiles[49], p95=quantiles[94], p99=quantiles[98], max=latencies[-1])
    if process is not None:
        result["settle_s"] = await _idle_after(process.pid, time.perf_counter(), 120)
        cpu, wall = _cpu_s(process.pid), time.perf_counter()
        await asyncio.sleep(10)
        result["cpu_pct"] = 100 * (_cpu_s(process.pid) - cpu) / (time.perf_counter() - wall)
        result["rss_mib"] = _rss_mib(process.pid)
        result["sockets"] = _sockets(process.pid)
        process.terminate()
        process.wait(timeout=30)
        if restart:
            writes = _Writes(api, namespace)
            await asyncio.sleep(0.5)
            begun = time.perf_counter()
            process = _spawn(cp, mode, namespace)
            result["restart_s"] = await _idle_after(process.pid, begun, 60)
            await asyncio.sleep(1)
            writes.stop()
            result["restart_writes"] = writes.count
            result["restart_rss_mib"] = _rss_mib(process.pid)
            process.terminate()
            process.wait(timeout=30)
    elif restart and mode == "floor":
        result["restart_s"] = await _restart_floor(cp, namespace)
    await api.session.close()
    # Wait until the namespace is gone: deleting N objects must not load the next mode's run.
    cp.kubectl("delete", "namespace", namespace, "--timeout=300s", check=False)
    return result


def _table(rows: list[dict[str, Any]]) -> str:
    """The rows side by side, each figure with its ratio to the floor's of the same N."""
    columns = (
        ("p50", "p50 ms", "{:.0f}"),
        ("p95", "p95 ms", "{:.0f}"),
        ("p99", "p99 ms", "{:.0f}"),
        ("max", "max ms", "{:.0f}"),
        ("all_jobs_s", "all Jobs s", "{:.2f}"),
        ("rss_mib", "RSS MiB", "{:.1f}"),
        ("cpu_pct", "CPU % rest", "{:.1f}"),
        ("sockets", "sockets", "{:.0f}"),
        ("restart_s", "restart s", "{:.2f}"),
        ("restart_writes", "restart writes", "{:.0f}"),
    )
    floors = {r["count"]: r for r in rows if r["mode"] == "floor"}
    lines = [
        "| mode | N | jobs | " + " | ".join(title for _, title, _ in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for r in rows:
        cells = []
        floor = floors.get(r["count"], {})
        for key, _, fmt in columns:
            if key not in r:
                cells.append("-")
                continue
            cell = fmt.format(r[key])
            if (
                r["mode"] != "floor"
                and floor.get(key)
                and key not in {"restart_writes", "rss_mib", "cpu_pct", "sockets"}
            ):
                cell += f" ({r[key] / floor[key]:.1f}x)"
            cells.append(cell)
        lines.append(f"| {r['mode']} | {r['count']} | {r['jobs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,100")
    parser.add_argument("--modes", default="floor,models,kopf-minimal,mlsteward")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--restart-at", type=int, default=1000, help="measure the restart at this N")
    args = parser.parse_args()
    load_before = os.getloadavg()
    directory = pathlib.Path(tempfile.mkdtemp(prefix="bench-operator-"))
    cp = controlplane.up(directory, fake_nodes=1, tools=toolchain.build())
    try:
        cp.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        rows = []
        for count in (int(c) for c in args.counts.split(",")):
            for mode in args.modes.split(","):
                row = asyncio.run(_run(cp, mode, count, args.timeout, count == args.restart_at))
                rows.append(row)
                print(json.dumps(row), flush=True)
        print("\n" + _table(rows))
        print(f"\nmachine: {os.cpu_count()} CPUs, load before {load_before}, after {os.getloadavg()}")
    finally:
        controlplane.down(directory)


if __name__ == "__main__":
    main()
