"""Drift benchmark: mlsteward's streaming summaries vs Evidently vs plain numpy. Prints a table.

Run ``bench/drift/run.sh`` (it creates bench/drift/.venv-peers with Evidently 0.7.23 and
pandas<3 first). Every measurement is a fresh process; peak RSS is that process's
``ru_maxrss``. Times exclude generating the data; they cover summarising the current window
and running every per-column test. The script exits 1 when mlsteward's per-column verdicts
differ from Evidently's or from the injected shifts: the Evidently comparison lives here,
outside ``make test``, because Evidently is never a dependency of mlsteward.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
from typing import Any

import common

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]


def measure(command: list[str]) -> tuple[dict[str, Any], float]:
    """Run one child; return its JSON line and its peak RSS in MiB."""
    environment = {**os.environ, "PYTHONPATH": f"{HERE}:{REPO}"}
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        # Files, not pipes: a chatty child cannot fill a pipe and block while we wait for it.
        process = subprocess.Popen(command, stdout=out_file, stderr=err_file, env=environment, cwd=HERE)
        _, status, usage = os.wait4(process.pid, 0)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read().decode(), err_file.read().decode()
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-repeats", type=int, default=1)
    parser.add_argument("--peers-python", default=str(HERE / ".venv-peers" / "bin" / "python"))
    parser.add_argument("--output", default=str(HERE / "results" / "latest.json"))
    args = parser.parse_args()
    results_dir = pathlib.Path(args.output).parent
    results_dir.mkdir(parents=True, exist_ok=True)
    profile = results_dir / "profile.json"
    subprocess.run(
        [sys.executable, str(HERE / "make_profile.py"), str(profile)],
        check=True,
        env={**os.environ, "PYTHONPATH": f"{HERE}:{REPO}"},
    )
    ours = [sys.executable, str(HERE / "run_ours.py"), str(profile)]
    implementations = {
        "mlsteward streaming, batches of 256": (lambda n: [*ours, n, "256"], args.repeats),
        "mlsteward streaming, batches of 4096": (lambda n: [*ours, n, "4096"], args.repeats),
        "mlsteward via JSON + batches.parse, 256": (lambda n: [*ours, n, "256", "--json"], args.repeats),
        "numpy whole-window histograms": (
            lambda n: [sys.executable, str(HERE / "run_numpy.py"), str(profile), n],
            args.repeats,
        ),
        "Evidently 0.7.23 DataDriftPreset": (
            lambda n: [args.peers_python, str(HERE / "run_evidently.py"), n],
            args.evidently_repeats,
        ),
    }
    rows_list = [int(r) for r in args.rows.split(",")]
    table: list[dict[str, Any]] = []
    failures: list[str] = []
    for rows in rows_list:
        outputs: dict[str, dict[str, Any]] = {}
        for name, (command, repeats) in implementations.items():
            runs = [measure(command(str(rows))) for _ in range(repeats)]
            seconds = statistics.median(r[0]["seconds"] for r in runs)
            cpu = statistics.median(r[0]["cpu_seconds"] for r in runs)
            rss = statistics.median(r[1] for r in runs)
            outputs[name] = runs[0][0]
            drifted = sorted(c for c, v in runs[0][0]["verdicts"].items() if v)
            table.append(
                {"implementation": name, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds,
                 "cpu_seconds": cpu, "rows_per_cpu_s": rows / cpu,
                 "peak_rss_mib": rss, "repeats": repeats, "drifted": drifted}
            )  # fmt: skip
            print(f"  measured {name} at {rows} rows: {seconds:.3f} s", file=sys.stderr)
        evidently = outputs["Evidently 0.7.23 DataDriftPreset"]
        for name, output in outputs.items():
            if output["verdicts"] != evidently["verdicts"]:
                failures.append(f"{name} at {rows} rows disagrees with Evidently: {output['verdicts']}")
            if {c for c, v in output["verdicts"].items() if v} != common.SHIFTED:
                failures.append(f"{name} at {rows} rows does not flag exactly {sorted(common.SHIFTED)}")
        evidently_row = next(
            r for r in table if r["rows"] == rows and r["implementation"].startswith("Evidently")
        )
        reference_time, reference_cpu = evidently_row["seconds"], evidently_row["cpu_seconds"]
        for row in table:
            if row["rows"] == rows:
                row["speedup_vs_evidently"] = reference_time / row["seconds"]
                row["cpu_speedup_vs_evidently"] = reference_cpu / row["cpu_seconds"]
    print_table(table)
    pathlib.Path(args.output).write_text(json.dumps({"table": table, "failures": failures}, indent=2))
    for failure in failures:
        print("FAIL:", failure)
    if not failures:
        print(f"verdicts: every implementation flags exactly {sorted(common.SHIFTED)}, as Evidently does")
    return 1 if failures else 0


def print_table(table: list[dict[str, Any]]) -> None:
    columns = [
        ("implementation", 40, "{}"),
        ("rows", 9, "{:,}"),
        ("wall s", 8, "{:.3f}"),
        ("CPU s", 8, "{:.3f}"),
        ("rows/CPU-s", 11, "{:,.0f}"),
        ("x Evidently (CPU)", 17, "{:.1f}"),
        ("x Evidently (wall)", 18, "{:.1f}"),
        ("peak RSS MiB", 12, "{:.1f}"),
    ]
    keys = ["implementation", "rows", "seconds", "cpu_seconds", "rows_per_cpu_s", "cpu_speedup_vs_evidently",
            "speedup_vs_evidently", "peak_rss_mib"]  # fmt: skip
    print("| " + " | ".join(f"{title:>{width}}" for title, width, _ in columns) + " |")
    print("|" + "|".join("-" * (width + 2) for _, width, _ in columns) + "|")
    for row in table:
        cells = [
            f"{fmt.format(row[key]):>{width}}" for key, (_, width, fmt) in zip(keys, columns, strict=True)
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
