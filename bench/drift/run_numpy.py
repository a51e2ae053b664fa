"""(c) A plain numpy baseline: whole-window histograms on the same edges, then the same tests.

Usage: python run_numpy.py PROFILE.json ROWS. The window is materialised in memory (numeric
columns as float arrays, categoricals as numpy string arrays, prepared before timing).
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import common
import numpy as np
import orjson

from mlsteward.monitoring import profiles, statistics


def main() -> None:
    document = orjson.loads(pathlib.Path(sys.argv[1]).read_bytes())
    reference = profiles.parse_reference(document)
    data = common.current(int(sys.argv[2]))
    strings = {name: np.array(data[name]) for name in common.CATEGORICAL}
    began, cpu_began = time.perf_counter(), time.process_time()
    verdicts: dict[str, bool] = {}
    scores: dict[str, float] = {}
    for column in reference.features:
        if isinstance(column, profiles.NumericReference):
            x = data[column.name]
            k = len(column.edges) - 1
            index = np.searchsorted(column.edges, x, side="right")
            index[x == column.edges[-1]] = k
            counts = np.bincount(index, minlength=k + 2)
            sums = np.bincount(index, weights=x, minlength=k + 2)
            counts = np.append(counts, 0)
            score = statistics.wasserstein(
                column.counts, counts, column.edges,
                current_sums=np.append(sums, 0.0), reference_std=column.std,
            ).value  # fmt: skip
        else:
            values, tallies = np.unique(strings[column.name], return_counts=True)
            position = {c: i for i, c in enumerate(column.categories)}
            counts = np.zeros(len(column.categories) + 3, np.int64)
            unknown = len(column.categories) + (1 if column.complete else 0)
            for value, tally in zip(values.tolist(), tallies.tolist(), strict=True):
                counts[position.get(value, unknown)] += tally
            score = statistics.jensen_shannon(column.counts, counts).value
        scores[column.name] = score
        verdicts[column.name] = score >= 0.1
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "verdicts": verdicts, "scores": scores}))


if __name__ == "__main__":
    main()
