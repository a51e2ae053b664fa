"""(a) mlsteward's streaming summaries + tests, fed batch by batch. Prints one JSON line.

Usage: python run_ours.py PROFILE.json ROWS BATCH [--json]
With --json each batch goes through what the sidecar does after the socket: orjson
decoding and ``batches.parse`` (type checks), instead of arriving as numpy columns.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import common
import numpy as np
import orjson

from mlsteward.monitoring import batches, monitors, profiles, verdicts, windows


def main() -> None:
    profile_path, rows, batch = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    through_json = "--json" in sys.argv
    reference = profiles.parse_reference(orjson.loads(profile_path.read_bytes()))
    rules = verdicts.Rules(min_samples=1000, consecutive_windows=1)
    monitor = monitors.Monitor(
        reference, rules, windows.WindowSpec("tumbling", rows, None, 1000), monitors.Options(), now=0.0
    )
    layout = monitor.layout
    numeric_names = [c.name for c in layout.numeric]
    elapsed = cpu = 0.0
    for part in common.current_chunks(rows):
        n = len(part["n00"])
        block_all = np.vstack([part[name] for name in numeric_names])  # feature-major, as Batch holds it
        # Slice the chunk into batches before the clock starts: only ingest is timed.
        spans = [(start, min(start + batch, n)) for start in range(0, n, batch)]
        if through_json:
            bodies = [
                orjson.dumps(_document(part, a, b), option=orjson.OPT_SERIALIZE_NUMPY) for a, b in spans
            ]
            began, cpu_began = time.perf_counter(), time.process_time()
            for body in bodies:
                parsed = batches.parse(orjson.loads(body), layout, max_rows=1 << 20, max_missing_share=0.5)
                monitor.ingest(parsed, 1.0)
        else:
            ready = [
                batches.Batch(
                    b - a, "1", "champion", None, block_all[:, a:b],
                    {c.key: part[c.name][a:b] for c in layout.categorical}, None, None, {},
                )
                for a, b in spans
            ]  # fmt: skip
            began, cpu_began = time.perf_counter(), time.process_time()
            for item in ready:
                monitor.ingest(item, 1.0)
        elapsed += time.perf_counter() - began
        cpu += time.process_time() - cpu_began
    began, cpu_began = time.perf_counter(), time.process_time()
    monitor.advance(2.0)  # closes the window (it holds `rows` rows) and runs every test
    elapsed += time.perf_counter() - began
    cpu += time.process_time() - cpu_began
    evaluation = monitor.evaluation
    assert evaluation is not None and evaluation.rows == rows, evaluation
    verdict = {v.column.name: v.state == "drift" for v in evaluation.columns if v.column.role == "feature"}
    scores = {v.column.name: v.score for v in evaluation.columns if v.column.role == "feature"}
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "verdicts": verdict, "scores": scores}))


def _document(part: dict[str, object], start: int, stop: int) -> dict[str, object]:
    features = {name: part[name][start:stop] for name in common.NUMERIC + common.CATEGORICAL}  # type: ignore[index]
    return {"model_version": "1", "route": "champion", "features": features, "prediction": {}}


if __name__ == "__main__":
    main()
