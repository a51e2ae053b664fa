"""Benchmark: ``mlsteward train`` against a plain scikit-learn fit and the same fit under MLflow autolog.

Prints a table of median wall time, CPU time and peak memory (each run a fresh process, measured
by ``os.wait4``), the CPU time of the fit alone (the peer measures it around ``fit``, the trainer
logs it as its ``fit`` stage) and the load average, at 10k, 100k and 1M rows of the synthetic
credit data widened to 25 columns, for LogisticRegression, HistGradientBoosting and RandomForest.
Not part of ``make test``.

    .venv/bin/python bench/training/run.py [--rows 10000 100000 1000000] [--repeats 3]
    .venv/bin/python bench/training/run.py --table bench/training/results/results.json

The MLflow peer runs in ``bench/training/.venv-peers`` (created here on first use; MLflow is
never a runtime dependency). Every variant runs with the same environment, including
``OMP_WAIT_POLICY=PASSIVE``, which the trainer sets for itself (see docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import yaml

from mlsteward.training import datasets

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
PEERS = HERE / ".venv-peers"
PEER_REQUIREMENTS = ["mlflow==3.17.2", "scikit-learn==1.9.1", "pyyaml"]  # mlflow pins its own pyarrow
# RandomForest is bounded so that 1M rows stay within minutes on 2 cores: 25 trees, depth 10,
# each grown on a 20% bootstrap sample, leaves of at least 20 rows.
ESTIMATORS: dict[str, dict[str, Any]] = {
    "LogisticRegression": {"max_iter": 200},
    "HistGradientBoostingClassifier": {"max_iter": 100},
    "RandomForestClassifier": {
        "n_estimators": 25,
        "max_depth": 10,
        "max_samples": 0.2,
        "min_samples_leaf": 20,
        "n_jobs": -1,
    },
}
FEATURES = [*datasets.NUMERIC, *datasets.CATEGORICAL, *(f"x{i}" for i in range(10))]
_FIT_STAGE = re.compile(rb"stage fit took [0-9.]+ s \(([0-9.]+) CPU s\)")


def make_data(rows: int, directory: pathlib.Path) -> pathlib.Path:
    """Credit data plus 10 noise columns: 25 columns in all (15 features used + 10 noise features).

    Generated in a child process: a child's peak RSS (``ru_maxrss``) starts from its parent's
    RSS at fork, so the parent must never hold a large frame."""
    path = directory / f"credit-{rows}.parquet"
    if not path.exists():
        subprocess.run([sys.executable, str(HERE / "run.py"), "--generate", str(rows), str(path)], check=True)
    return path


def generate(rows: int, path: pathlib.Path) -> None:
    frame = datasets.generate(rows, seed=11)
    rng = np.random.default_rng(5)
    for i in range(10):
        frame[f"x{i}"] = np.round(rng.normal(size=rows), 4)
    datasets.write(frame, path)


def make_spec(data: pathlib.Path, estimator: str, directory: pathlib.Path) -> pathlib.Path:
    spec = {
        "task": "classification",
        "dataset": {
            "uri": str(data),
            "target": datasets.TARGET,
            "features": FEATURES,
            "categorical": list(datasets.CATEGORICAL),
            "sensitive": list(datasets.SENSITIVE),
        },
        "estimator": {"className": estimator, "params": ESTIMATORS[estimator], "seed": 1},
        "fairnessGates": {"minDemographicParityRatio": 0.8},
    }
    path = directory / f"spec-{data.stem}-{estimator}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def ensure_peers() -> pathlib.Path:
    python = PEERS / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], check=True)
    return python


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, float, float | None]:
    """Wall seconds, CPU seconds (user + system), peak RSS (MiB) and fit CPU seconds of one process.

    CPU time is reported beside wall time because a shared machine's load inflates wall time
    unevenly; CPU time is much less sensitive to it."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    out, err = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(
            f"{command} failed ({process.returncode}): {err.decode()[-2000:]} {out.decode()[-500:]}"
        )
    fit_cpu: float | None = None
    if (stage := _FIT_STAGE.search(err)) is not None:
        fit_cpu = float(stage.group(1))
    elif out.strip().startswith(b"{"):
        fit_cpu = json.loads(out.strip().splitlines()[-1]).get("fit_cpu_s")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, fit_cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS))
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (medians are reported)")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "results")
    parser.add_argument("--generate", nargs=2, metavar=("ROWS", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--table", type=pathlib.Path, nargs="+", help="only print the table of saved results files"
    )
    args = parser.parse_args()
    if args.table:
        print_table([r for path in args.table for r in json.loads(path.read_text())])
        return 0
    if args.generate:
        generate(int(args.generate[0]), pathlib.Path(args.generate[1]))
        return 0
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    peers_python = None if args.no_mlflow else ensure_peers()
    env = {
        **os.environ,
        "OMP_WAIT_POLICY": "PASSIVE",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "DO_NOT_TRACK": "true",
    }
    env.pop("MLSTEWARD_MODEL_SPEC", None)
    venv_bin = pathlib.Path(sys.executable).parent
    results: list[dict[str, Any]] = []
    for rows in args.rows:
        data = make_data(rows, args.out)
        repeats = args.repeats
        for estimator in args.estimators:
            spec = make_spec(data, estimator, args.out)
            variants = {
                "plain": [str(venv_bin / "python"), str(HERE / "peer.py"), "--spec", str(spec)],
                "mlsteward": [str(venv_bin / "mlsteward"), "train", "--spec", str(spec), "--store", "{tmp}"],
            }
            if peers_python is not None:
                variants["mlflow"] = [
                    str(peers_python),
                    str(HERE / "peer.py"),
                    "--spec",
                    str(spec),
                    "--mlflow",
                    "{tmp}",
                ]
            for _ in range(repeats):
                for variant, template in variants.items():
                    scratch = pathlib.Path(tempfile.mkdtemp(prefix="bench-", dir=args.out))
                    try:
                        wall, cpu, rss, fit_cpu = measure(
                            [part.replace("{tmp}", str(scratch)) for part in template], env
                        )
                    finally:
                        shutil.rmtree(scratch, ignore_errors=True)
                    results.append(
                        {
                            "rows": rows,
                            "estimator": estimator,
                            "variant": variant,
                            "wall_s": wall,
                            "cpu_s": cpu,
                            "rss_mib": rss,
                            "fit_cpu_s": fit_cpu,
                            "load1": os.getloadavg()[0],
                        }
                    )
                    print(
                        f"{rows:>8} {estimator:<32} {variant:<10} {wall:8.2f} s {cpu:8.2f} cpu-s "
                        f"{rss:8.0f} MiB fit {fit_cpu or 0:8.2f} cpu-s load {os.getloadavg()[0]:.1f}",
                        file=sys.stderr,
                        flush=True,
                    )
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print_table(results)
    return 0


def print_table(results: list[dict[str, Any]]) -> None:
    """Medians per cell. "fit held equal" replaces this variant's fit CPU time by the plain fit's:
    what the variant adds around the fit, whichever of the two fits happened to run faster."""
    cells: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for r in results:
        cells.setdefault((r["rows"], r["estimator"], r["variant"]), []).append(r)

    def median(rows: int, estimator: str, variant: str, key: str) -> float:
        values = [r[key] for r in cells.get((rows, estimator, variant), []) if r.get(key) is not None]
        return float(statistics.median(values)) if values else float("nan")

    print(
        "| rows | estimator | variant | runs | wall s | wall vs plain | CPU s | CPU vs plain "
        "| fit CPU s | CPU vs plain, fit held equal | peak RSS MiB | load |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (rows, estimator, variant), runs in cells.items():
        wall, cpu = median(rows, estimator, variant, "wall_s"), median(rows, estimator, variant, "cpu_s")
        fit, load = median(rows, estimator, variant, "fit_cpu_s"), median(rows, estimator, variant, "load1")
        plain_wall, plain_cpu = (
            median(rows, estimator, "plain", "wall_s"),
            median(rows, estimator, "plain", "cpu_s"),
        )
        plain_fit = median(rows, estimator, "plain", "fit_cpu_s")
        rss = max(r["rss_mib"] for r in runs)
        short = estimator.replace("Classifier", "")
        print(
            f"| {rows:,} | {short} | {variant} | {len(runs)} | {wall:.2f} | {wall / plain_wall - 1:+.0%} | "
            f"{cpu:.2f} | {cpu / plain_cpu - 1:+.0%} | {fit:.2f} | "
            f"{(cpu - fit + plain_fit) / plain_cpu - 1:+.0%} | {rss:.0f} | {load:.1f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
