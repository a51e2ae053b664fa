"""Serving benchmark: mlsteward serve against MLServer 1.7, KServe 0.21 and in-process ONNX Runtime.

Same machine, same run, same models (see models.py), same request body: one Open Inference
Protocol v2 request with one ``[N, 20]`` FP32 tensor, which every server accepts. The load comes
from ``wrk`` (Debian package) with a Lua script for the POST body, in its own process, for a
bounded time per point, at concurrency 1, 8 and 32 with 1 row per request, plus 32 rows per
request at concurrency 8 for rows/s. mlsteward is also sent the 32-row request with the same
values as binary tensor data (the protocol's binary extension, as ``tritonclient`` sends it:
``Inference-Header-Content-Length`` and ``parameters.binary_data_size``), reported as the
separate row ``mlsteward-binary`` (the same server process). Each point is measured
``--repeat`` times, the servers interleaved within a round so that noise from other work on the
machine spreads over all of them; the table shows the median of the repeats.

Servers:

- ``mlsteward``: ``mlsteward serve``, one process, full validation, Prometheus metrics and the
  monitor feed on (to a local sink, ``sink.py``), default flags.
- ``mlserver``: MLServer 1.7 with its scikit-learn runtime, default settings (one parallel worker).
- ``mlserver-tuned``: the same with ``parallel_workers: 0`` (inference in the server process),
  metrics endpoint off, debug off.
- ``kserve``: KServe 0.21's model server with a scikit-learn model (peers/kserve_sklearn.py).
- ``mlsteward-baseline`` (with ``--baseline DIR``): the same server from another checkout of the
  repository (``DIR/mlsteward``, e.g. ``git archive <commit> mlsteward | tar -x -C DIR``), to
  compare two versions of mlsteward in one run.
- ``onnxruntime``: the floor: ``InferenceSession.run`` called in this process by ``c`` threads
  (no HTTP, no JSON, no validation).

Peers live in ``bench/serving/.venv-peers`` (created by setup_peers.sh; never a dependency of
mlsteward). A peer that cannot be installed or started is reported as such, never estimated.

Usage::

    .venv/bin/python bench/serving/run.py [--models gbt,rf,logreg] [--duration 5] [--repeat 3]
        [--no-peers] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
PEERS = HERE / ".venv-peers"
PYTHON = pathlib.Path(sys.executable)
CONCURRENCY = (1, 8, 32)
BATCH_ROWS = 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def body(rows: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    data = np.round(rng.normal(size=(rows, 20)), 4).tolist()
    return json.dumps(
        {"inputs": [{"name": "input-0", "shape": [rows, 20], "datatype": "FP32", "data": data}]}
    ).encode()


def binary_body(rows: int, seed: int = 0) -> tuple[bytes, int]:
    """The same tensor as :func:`body`, as binary tensor data; returns the body and its JSON length."""
    rng = np.random.default_rng(seed)
    data = np.round(rng.normal(size=(rows, 20)), 4).astype("<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [rows, 20],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(data)},
                }
            ]
        }
    ).encode()
    return header + data, len(header)


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with code {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout} s")


class Server:
    """A server process under test (or a reason why it could not be had)."""

    def __init__(
        self,
        name: str,
        infer_url: str,
        ready_url: str,
        *,
        command: list[str],
        cwd: pathlib.Path,
        log: pathlib.Path,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.environment = environment
        self.infer_url = infer_url
        self.ready_url = ready_url
        self.command = command
        self.cwd = cwd
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.error: str | None = None

    def start(self, timeout: float = 120) -> None:
        with self.log.open("wb") as handle:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.environment,
            )
        try:
            wait_http(self.ready_url, timeout, self.process)
        except RuntimeError as error:
            tail = self.log.read_text(errors="replace")[-1500:]
            self.error = f"did not start ({error}); log tail: {tail}"
            self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(
    url: str,
    payload: bytes,
    concurrency: int,
    duration: float,
    work: pathlib.Path,
    *,
    json_length: int | None = None,
) -> dict[str, float]:
    """One wrk run; with ``json_length``, the payload is binary tensor data after a JSON object."""
    script = work / f"post-{len(payload)}{'-binary' if json_length is not None else ''}.lua"
    if not script.exists():
        if json_length is None:
            text = payload.decode()
            script.write_text(
                f'wrk.method = "POST"\nwrk.body = [==[{text}]==]\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
        else:  # decimal escapes: a Lua long string would turn CR LF bytes into LF
            escaped = "".join(f"\\{byte}" for byte in payload)
            script.write_text(
                f'wrk.method = "POST"\nwrk.body = "{escaped}"\n'
                'wrk.headers["Content-Type"] = "application/octet-stream"\n'
                f'wrk.headers["Inference-Header-Content-Length"] = "{json_length}"\n'
            )
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors}


def onnxruntime_floor(model: pathlib.Path, rows: int, concurrency: int, duration: float) -> dict[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.normal(size=(rows, 1)).astype(np.float32) for i in session.get_inputs()}
    for _ in range(50):
        session.run(None, feeds)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    stop = time.perf_counter() + duration

    def loop(mine: list[float]) -> None:
        while True:
            start = time.perf_counter()
            if start > stop:
                return
            session.run(None, feeds)
            mine.append(time.perf_counter() - start)

    threads = [threading.Thread(target=loop, args=(latencies[i],)) for i in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    everything = np.array([value for mine in latencies for value in mine]) * 1e3
    return {
        "rps": len(everything) / elapsed,
        "p50": float(np.percentile(everything, 50)),
        "p99": float(np.percentile(everything, 99)),
        "errors": 0,
    }


def mlserver(name: str, model: str, joblib_path: str, work: pathlib.Path, tuned: bool) -> Server:
    folder = work / name / model
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(joblib_path, folder / "model.joblib")
    port = free_port()
    settings: dict[str, Any] = {
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "debug": False,
    }
    if tuned:
        settings.update({"parallel_workers": 0, "metrics_endpoint": None})
    (folder / "settings.json").write_text(json.dumps(settings))
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": model,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "1"},
            }
        )
    )
    return Server(
        name,
        f"http://127.0.0.1:{port}/v2/models/{model}/infer",
        f"http://127.0.0.1:{port}/v2/models/{model}/ready",
        command=[str(PEERS / "mlserver" / "bin" / "mlserver"), "start", "."],
        cwd=folder,
        log=work / f"{name}-{model}.log",
    )


def kserve(model: str, joblib_path: str, work: pathlib.Path) -> Server:
    folder = work / "kserve" / model
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(joblib_path, folder / "model.joblib")
    port = free_port()
    command = [
        str(PEERS / "kserve" / "bin" / "python"),
        str(HERE / "peers" / "kserve_sklearn.py"),
        "--model_name",
        model,
        "--model_dir",
        str(folder),
        "--http_port",
        str(port),
        "--grpc_port",
        str(free_port()),
        "--workers",
        "1",
        "--enable_grpc",
        "false",
    ]
    return Server(
        "kserve",
        f"http://127.0.0.1:{port}/v2/models/{model}/infer",
        f"http://127.0.0.1:{port}/v2/models/{model}/ready",
        command=command,
        cwd=folder,
        log=work / f"kserve-{model}.log",
    )


def mlsteward(
    model: str,
    digest: str,
    store: pathlib.Path,
    work: pathlib.Path,
    sink_port: int,
    *,
    baseline: pathlib.Path | None = None,
) -> Server:
    name = "mlsteward" if baseline is None else "mlsteward-baseline"
    folder = work / name / model
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "routing.json").write_text(
        json.dumps({"model": model, "champion": {"version": "1", "digest": digest}})
    )
    port = free_port()
    command = [
        str(PYTHON),
        "-m",
        "mlsteward.cli",
        "serve",
        "--routing",
        str(folder / "routing.json"),
        "--store",
        str(store),
        "--port",
        str(port),
        "--monitor-url",
        f"http://127.0.0.1:{sink_port}",
        "--log-level",
        "warning",
    ]
    return Server(
        name,
        f"http://127.0.0.1:{port}/v2/models/{model}/infer",
        f"http://127.0.0.1:{port}/v2/health/ready",
        command=command,
        cwd=folder,
        log=work / f"{name}-{model}.log",
        # The baseline's package first on the path: it wins over this checkout's editable install.
        environment=None if baseline is None else {**os.environ, "PYTHONPATH": str(baseline)},
    )


@contextlib.contextmanager
def sink() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([str(PYTHON), str(HERE / "sink.py"), str(port)])
    try:
        yield port
    finally:
        process.terminate()
        process.wait(10)


def ensure_peers() -> str | None:
    """Create the peers' venvs; returns why they could not be installed, or None."""
    import sklearn

    result = subprocess.run(
        ["bash", str(HERE / "setup_peers.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "SKLEARN_VERSION": sklearn.__version__},
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        return f"setup_peers.sh failed ({result.returncode}): {result.stderr[-1500:]}"
    return None


def measure(
    servers: list[Server],
    onnx: pathlib.Path,
    payloads: dict[int, bytes],
    binary_payload: tuple[bytes, int],
    *,
    duration: float,
    repeat: int,
    work: pathlib.Path,
) -> dict[tuple[str, int, int], list[dict[str, float]]]:
    points = [(1, c) for c in CONCURRENCY] + [(BATCH_ROWS, 8)]
    results: dict[tuple[str, int, int], list[dict[str, float]]] = {}
    for round_ in range(repeat):
        for rows, concurrency in points:
            for server in servers:
                if server.error is not None:
                    continue
                if round_ == 0:  # warm-up, not recorded
                    wrk(server.infer_url, payloads[rows], concurrency, 1, work)
                variants = [(server.name, payloads[rows], None)]
                if rows == BATCH_ROWS and server.name == "mlsteward":
                    variants.append(("mlsteward-binary", *binary_payload))
                for name, payload, json_length in variants:
                    if round_ == 0 and json_length is not None:
                        wrk(server.infer_url, payload, concurrency, 1, work, json_length=json_length)
                    result = wrk(
                        server.infer_url, payload, concurrency, duration, work, json_length=json_length
                    )
                    results.setdefault((name, rows, concurrency), []).append(result)
                    print(
                        f"  round {round_ + 1} {name:18} rows={rows:<3} c={concurrency:<3} "
                        f"{result['rps']:9.0f} req/s  p50 {result['p50']:7.2f} ms  "
                        f"p99 {result['p99']:7.2f} ms"
                        + (f"  ERRORS {result['errors']}" if result["errors"] else ""),
                        flush=True,
                    )
            floor = onnxruntime_floor(onnx, rows, concurrency, duration)
            results.setdefault(("onnxruntime", rows, concurrency), []).append(floor)
    return results


def median(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description="mlsteward serve against MLServer, KServe and bare ONNX Runtime"
    )
    parser.add_argument("--models", default="gbt,rf,logreg")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured point")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=pathlib.Path, default=pathlib.Path("/tmp/mlsteward-bench-serving"))
    parser.add_argument("--no-peers", action="store_true", help="measure mlsteward and ONNX Runtime only")
    parser.add_argument(
        "--baseline",
        type=pathlib.Path,
        help="a folder holding another version's mlsteward package, served as mlsteward-baseline",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get update && apt-get install -y wrk", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(REPO))
    import models as bench_models  # type: ignore[import-not-found]

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    index_path = work / "models" / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else bench_models.build(work / "models")
    peers_missing = "not requested (--no-peers)" if args.no_peers else ensure_peers()
    payloads = {1: body(1), BATCH_ROWS: body(BATCH_ROWS)}
    binary_payload = binary_body(BATCH_ROWS)
    loads = [os.getloadavg()[0]]
    table: list[tuple[str, str, int, int, dict[str, float]]] = []
    unavailable: dict[str, str] = {}
    with sink() as sink_port:
        for model in args.models.split(","):
            entry = index["models"][model]
            store = work / "models" / "store"
            servers = [mlsteward(model, entry["digest"], store, work, sink_port)]
            if args.baseline is not None:
                servers.append(
                    mlsteward(
                        model, entry["digest"], store, work, sink_port, baseline=args.baseline.resolve()
                    )
                )
            if peers_missing is None:
                servers += [
                    mlserver("mlserver", model, entry["joblib"], work, tuned=False),
                    mlserver("mlserver-tuned", model, entry["joblib"], work, tuned=True),
                    kserve(model, entry["joblib"], work),
                ]
            try:
                for server in servers:
                    server.start()
                    if server.error:
                        unavailable[server.name] = server.error
                        print(f"{server.name}: {server.error}", file=sys.stderr)
                print(f"model {model}:", flush=True)
                results = measure(
                    servers,
                    work / "models" / model / "model.onnx",
                    payloads,
                    binary_payload,
                    duration=args.duration,
                    repeat=args.repeat,
                    work=work,
                )
            finally:
                for server in servers:
                    server.stop()
            loads.append(os.getloadavg()[0])
            for (name, rows, concurrency), runs in results.items():
                table.append((model, name, rows, concurrency, median(runs)))
    print_table(table, args, peers_missing, unavailable)
    # Other work on the machine inflates every latency; say how much there was.
    print("1-minute load average at the start and after each model: " + ", ".join(f"{x:.1f}" for x in loads))
    return 0


def print_table(
    table: list[tuple[str, str, int, int, dict[str, float]]],
    args: argparse.Namespace,
    peers_missing: str | None,
    unavailable: dict[str, str],
) -> None:
    print(
        f"\nmedian of {args.repeat} runs of {args.duration:g} s each; {os.cpu_count()} CPUs; wrk -t1; "
        "body: one [N, 20] FP32 tensor (mlsteward-binary: the same values as binary tensor data)"
    )
    print(
        f"{'model':7} {'server':18} {'rows':>4} {'c':>3} {'req/s':>9} {'rows/s':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
    )
    for model, name, rows, concurrency, result in sorted(table, key=lambda r: (r[0], r[2], r[3], r[1])):
        print(
            f"{model:7} {name:18} {rows:>4} {concurrency:>3} {result['rps']:>9.0f} "
            f"{result['rps'] * rows:>9.0f} {result['p50']:>8.2f} {result['p99']:>8.2f} "
            f"{result['errors']:>6.0f}"
        )
    lookup = {(m, n, r, c): res for m, n, r, c, res in table}
    for model in args.models.split(","):
        ours = lookup.get((model, "mlsteward", 1, 8))
        tuned = lookup.get((model, "mlserver-tuned", 1, 8))
        if ours and tuned:
            print(
                f"{model} c=8 1 row: mlsteward / MLServer tuned = {ours['rps'] / tuned['rps']:.2f}x req/s, "
                f"p99 {ours['p99']:.2f} ms vs {tuned['p99']:.2f} ms ({ours['p99'] / tuned['p99']:.2f} of it)"
            )
        for name in ("mlsteward", "mlsteward-binary", "mlsteward-baseline"):
            batch = lookup.get((model, name, BATCH_ROWS, 8))
            if batch:
                rows_per_s = batch["rps"] * BATCH_ROWS
                print(
                    f"{model} c=8 {BATCH_ROWS} rows/request: {name} {rows_per_s:,.0f} rows/s "
                    f"({'meets' if rows_per_s >= 100_000 else 'misses'} the 100,000 rows/s target)"
                )
        baseline = lookup.get((model, "mlsteward-baseline", 1, 8))
        if ours and baseline:
            print(
                f"{model} c=8 1 row: mlsteward / mlsteward-baseline = "
                f"{ours['rps'] / baseline['rps']:.2f}x req/s, "
                f"p99 {ours['p99']:.2f} ms vs {baseline['p99']:.2f} ms"
            )
    if peers_missing:
        print(f"peers not measured: {peers_missing}")
    for name, reason in unavailable.items():
        print(f"{name} not measured: {reason[:300]}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
