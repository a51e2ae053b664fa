"""What the monitor feed and the decision log cost the server: detached vs attached vs attached + log.

Same run, same model (the GBT model of models.py), same request bodies, one ``mlsteward serve``
process per variant, all started once and measured interleaved within every round so that other
work on the machine spreads over all three:

- ``detached``: ``mlsteward serve`` with no monitor URL (no feed at all);
- ``sink``: the same with ``--monitor-url`` pointing at ``sink.py`` (answers 202, does nothing):
  the server's own share of the feed's cost;
- ``attached``: the same with ``--monitor-url`` pointing at a real ``mlsteward monitor`` sidecar;
- ``attached+log``: the same, its sidecar also writing the decision log to a local directory.

The load comes from ``wrk`` (Debian package) at concurrency 8 with 1 and 32 rows per request.
Each point is measured ``--repeat`` times (the first round is preceded by a 1-second warm-up);
the table shows medians, the throughput cost against ``detached``, and the CPU time the server
process spent per request (from /proc, so it does not depend on how busy the machine is) plus
the sidecar's CPU per row over the whole run (its total CPU / rows it received) times the rows
per request, against the detached server's CPU per request; and the 1-minute load average at
the start and end of the run. The "feed share" column is the server's own measure of the feed,
``mlsteward_serving_monitor_feed_seconds_total`` (event-loop time queueing rows, building and
writing batches) over the process's CPU time in the same point: unlike the throughput
difference, it does not move with other work on the machine. At the end it checks that the
sidecars really received the rows and that the decision log verifies.

Usage::

    .venv/bin/python bench/serving/monitor_cost.py [--duration 5] [--repeat 3] [--model gbt]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import run  # type: ignore[import-not-found]  # noqa: E402  # the serving benchmark's helpers

MLSTEWARD = pathlib.Path(sys.executable).parent / "mlsteward"
POINTS = ((1, 8), (32, 8))
FEED_SECONDS = "mlsteward_serving_monitor_feed_seconds_total"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc), in seconds."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of a process (its ONNX Runtime threads too) onto ``cpus``."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), cpus)


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


def reference(work: pathlib.Path, features: list[str]) -> tuple[pathlib.Path, str]:
    """The sidecar's reference artifact: the bench data's profile with a prediction section."""
    import models as bench_models  # type: ignore[import-not-found]
    import numpy as np

    from mlsteward.monitoring import profiling
    from mlsteward.store import artifacts

    frame, _ = bench_models.make_data(20_000)
    score = np.random.default_rng(0).beta(2.0, 2.0, len(frame))
    profile = profiling.profile(
        {name: frame[name].to_numpy() for name in features},
        prediction_label=["1" if value >= 0.5 else "0" for value in score],
        prediction_score=score,
    )
    schema = bench_models.numeric_schema(features)
    ref = artifacts.write_artifact(
        work / "reference",
        {"profile.json": artifacts.canonical_json(profile), "schema.json": artifacts.canonical_json(schema)},
    )
    assert ref.path is not None
    return ref.path, ref.digest


@contextlib.contextmanager
def sidecar(
    artifact: tuple[pathlib.Path, str], work: pathlib.Path, log_store: pathlib.Path | None
) -> Iterator[tuple[str, int]]:
    port = run.free_port()
    path, digest = artifact
    command = [
        str(MLSTEWARD), "monitor", "--profile-artifact", str(path),
        "--digest", digest, "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    if log_store is not None:
        command += ["--decision-log-store", str(log_store), "--decision-log-deployment", "bench",
                    "--decision-log-chain", "bench-0"]  # fmt: skip
    log = work / f"monitor-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        run.wait_http(url + "/healthz", 60, process)
        yield url, process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def server(
    name: str,
    model: str,
    digest: str,
    store: pathlib.Path,
    work: pathlib.Path,
    *,
    monitor_url: str | None,
    batch_rows: int | None = None,
) -> Any:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "routing.json").write_text(
        json.dumps({"model": model, "champion": {"version": "1", "digest": digest}})
    )
    port = run.free_port()
    command = [
        str(MLSTEWARD), "serve", "--routing", str(folder / "routing.json"), "--store", str(store),
        "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    if monitor_url is not None:
        command += ["--monitor-url", monitor_url]
        if batch_rows is not None:
            command += ["--monitor-batch-rows", str(batch_rows)]
    return run.Server(
        name,
        f"http://127.0.0.1:{port}/v2/models/{model}/infer",
        f"http://127.0.0.1:{port}/v2/health/ready",
        command=command,
        cwd=folder,
        log=work / f"{name}.log",
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gbt")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=pathlib.Path, default=pathlib.Path("/tmp/mlsteward-bench-serving"))
    parser.add_argument(
        "--pin",
        action="store_true",
        help="every server on CPU 0 alone; the load generator, sidecars and sink on CPU 1 (like pods "
        "whose containers have their own CPU: the sidecar's work no longer comes out of the server's)",
    )
    parser.add_argument(
        "--monitor-batch-rows",
        type=int,
        default=None,
        help="the servers' --monitor-batch-rows (default: theirs, 1024): rows per POST to the sidecar",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get update && apt-get install -y wrk", file=sys.stderr)
        return 2
    import models as bench_models

    work: pathlib.Path = args.work
    index_path = work / "models" / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else bench_models.build(work / "models")
    entry = index["models"][args.model]
    store = work / "models" / "store"
    cost_work = work / "monitor-cost"
    shutil.rmtree(cost_work, ignore_errors=True)
    cost_work.mkdir(parents=True)
    log_store = cost_work / "decisions"
    artifact = reference(cost_work, index["features"])
    payloads = {rows: run.body(rows) for rows, _ in POINTS}
    loads = [os.getloadavg()[0]]
    if args.pin:
        os.sched_setaffinity(0, {1})  # inherited by the sidecars, the sink and wrk
    results: dict[tuple[str, int, int], list[dict[str, float]]] = {}
    with (
        sidecar(artifact, cost_work, None) as (plain_url, plain_pid),
        sidecar(artifact, cost_work, log_store) as (log_url, log_pid),
        run.sink() as sink_port,
    ):
        servers = [
            server("detached", args.model, entry["digest"], store, cost_work, monitor_url=None),
            server(
                "sink",
                args.model,
                entry["digest"],
                store,
                cost_work,
                monitor_url=f"http://127.0.0.1:{sink_port}",
                batch_rows=args.monitor_batch_rows,
            ),
            server(
                "attached",
                args.model,
                entry["digest"],
                store,
                cost_work,
                monitor_url=plain_url,
                batch_rows=args.monitor_batch_rows,
            ),
            server(
                "attached+log",
                args.model,
                entry["digest"],
                store,
                cost_work,
                monitor_url=log_url,
                batch_rows=args.monitor_batch_rows,
            ),
        ]
        try:
            for item in servers:
                item.start()
                if item.error:
                    print(f"{item.name}: {item.error}", file=sys.stderr)
                    return 1
                if args.pin:
                    assert item.process is not None
                    pin(item.process.pid, {0})
            sidecar_cpu = {"attached": -cpu_seconds(plain_pid), "attached+log": -cpu_seconds(log_pid)}
            for round_ in range(args.repeat):
                for rows, concurrency in POINTS:
                    for item in servers:
                        if round_ == 0:
                            run.wrk(item.infer_url, payloads[rows], concurrency, 1, cost_work)
                        assert item.process is not None
                        base_url = item.infer_url.split("/v2/")[0]
                        feed_before = metric(base_url, FEED_SECONDS)
                        before = cpu_seconds(item.process.pid)
                        result = run.wrk(
                            item.infer_url, payloads[rows], concurrency, args.duration, cost_work
                        )
                        spent = cpu_seconds(item.process.pid) - before
                        requests = result["rps"] * args.duration
                        result["cpu_us"] = spent / requests * 1e6
                        result["feed_share"] = (metric(base_url, FEED_SECONDS) - feed_before) / spent
                        results.setdefault((item.name, rows, concurrency), []).append(result)
                        print(
                            f"  round {round_ + 1} {item.name:13} rows={rows:<3} c={concurrency:<3} "
                            f"{result['rps']:9.0f} req/s  p50 {result['p50']:6.2f} ms"
                            f"  p99 {result['p99']:6.2f} ms"
                            + (f"  ERRORS {result['errors']}" if result["errors"] else ""),
                            flush=True,
                        )
            time.sleep(12.0)  # let the feeds deliver and the decision log write their last batches
            sidecar_cpu["attached"] += cpu_seconds(plain_pid)
            sidecar_cpu["attached+log"] += cpu_seconds(log_pid)
        finally:
            for item in servers:
                item.stop()
        time.sleep(0.5)
        checks = {
            "attached sidecar rows": metric(plain_url, "mlsteward_monitor_rows_total"),
            "attached+log sidecar rows": metric(log_url, "mlsteward_monitor_rows_total"),
            "decisions dropped": metric(log_url, "mlsteward_audit_decisions_dropped_total"),
        }
    loads.append(os.getloadavg()[0])
    from mlsteward.audit import chains, locations

    report = chains.verify(locations.LocalLocation(log_store), "default", "bench")
    checks["decisions written"] = float(report.records)
    print()
    print(f"model {args.model}, {args.repeat} x {args.duration:g} s per point, medians"
          + (", servers pinned to CPU 0, everything else to CPU 1" if args.pin else "")
          + (f", --monitor-batch-rows {args.monitor_batch_rows}" if args.monitor_batch_rows else "") + "; "
          f"1-minute load average {loads[0]:.1f} at start, {loads[-1]:.1f} at end")  # fmt: skip
    print()
    sidecar_us = {
        "attached": sidecar_cpu["attached"] / max(checks["attached sidecar rows"], 1) * 1e6,
        "attached+log": sidecar_cpu["attached+log"] / max(checks["attached+log sidecar rows"], 1) * 1e6,
    }
    print(
        "| variant | rows/req | c | req/s | rows/s | p50 ms | p99 ms | throughput vs detached "
        "| server CPU µs/req | feed share of server | + sidecar CPU µs/req | CPU vs detached |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rows, concurrency in POINTS:
        base = statistics.median(r["rps"] for r in results[("detached", rows, concurrency)])
        base_cpu = statistics.median(r["cpu_us"] for r in results[("detached", rows, concurrency)])
        for item in servers:
            runs = results[(item.name, rows, concurrency)]
            rps = statistics.median(r["rps"] for r in runs)
            p50 = statistics.median(r["p50"] for r in runs)
            p99 = statistics.median(r["p99"] for r in runs)
            cpu = statistics.median(r["cpu_us"] for r in runs)
            share = statistics.median(r["feed_share"] for r in runs)
            side = sidecar_us.get(item.name, 0.0) * rows
            print(
                f"| {item.name} | {rows} | {concurrency} | {rps:,.0f} | {rps * rows:,.0f} | {p50:.2f} | "
                f"{p99:.2f} | {rps / base - 1:+.1%} | {cpu:.0f} | {share:.1%} | {side:.0f} "
                f"| {(cpu + side) / base_cpu - 1:+.1%} |"
            )
    print()
    print("checks: " + ", ".join(f"{k} {v:,.0f}" for k, v in checks.items()) + f"; chain {report.verdict}")
    for finding in report.findings:
        print(f"  decision log: {finding.kind}: {finding.message}")
    print(
        "sidecar CPU per row over the whole run: "
        + ", ".join(f"{name} {value:.1f} µs" for name, value in sidecar_us.items())
    )
    errors = sum(r["errors"] for runs in results.values() for r in runs)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
