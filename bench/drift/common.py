"""Synthetic data for the drift benchmark: 20 numeric + 5 categorical columns, known shifts.

Shared by every implementation (project venv and the Evidently venv): numpy only. The
current window is generated in chunks, each from its own seed, so a streaming consumer
never holds more than a chunk while a batch consumer concatenates the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

NUMERIC = [f"n{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
CARDINALITY = [5, 10, 20, 60, 3]
# Columns given a known shift in the current data; every other column is unchanged.
SHIFTED = {"n00", "n03", "n07", "n11", "c0", "c3"}
CHUNK = 65_536


def _numeric(rng: np.random.Generator, i: int, n: int, current: bool) -> np.ndarray:
    kind = i % 5
    if kind == 0:
        x = rng.normal(0.0, 1.0, n)
    elif kind == 1:
        x = rng.lognormal(0.0, 0.6, n)
    elif kind == 2:
        x = rng.uniform(-3.0, 3.0, n)
    elif kind == 3:
        x = rng.exponential(2.0, n)
    else:
        x = np.where(rng.random(n) < 0.5, rng.normal(-2.0, 1.0, n), rng.normal(2.0, 1.0, n))
    if not current:
        return x
    name = f"n{i:02d}"
    if name == "n00":
        x = x + 0.5  # half a standard deviation
    elif name == "n03":
        x = x * 1.5  # a wider spread
    elif name == "n07":
        past = rng.random(n) < 0.05  # 5% of rows past the training maximum
        x[past] = 7.0 + rng.uniform(0.0, 1.0, int(past.sum()))
    elif name == "n11":
        x = x * np.exp(0.3)  # a multiplicative shift of a skewed column
    return x


def _categories(k: int) -> list[str]:
    return [f"v{j:02d}" for j in range(k)]


def _categorical(rng: np.random.Generator, i: int, n: int, current: bool) -> list[str]:
    values = _categories(CARDINALITY[i])
    weights = np.linspace(2.0, 1.0, len(values))
    if current and i == 0:
        weights = weights[::-1] ** 3  # the ranking turned round
    weights = weights / weights.sum()
    column = rng.choice(values, n, p=weights)
    if current and i == 3:
        column[rng.random(n) < 0.15] = "never-seen"  # a value absent from training
    return column.tolist()  # type: ignore[no-any-return]


def chunk(seed: int, n: int, current: bool) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {name: _numeric(rng, i, n, current) for i, name in enumerate(NUMERIC)}
    for i, name in enumerate(CATEGORICAL):
        data[name] = _categorical(rng, i, n, current)
    return data


def reference(rows: int = 100_000) -> dict[str, Any]:
    return chunk(1, rows, current=False)


def current_chunks(rows: int) -> Iterator[dict[str, Any]]:
    for index, start in enumerate(range(0, rows, CHUNK)):
        yield chunk(1000 + index, min(CHUNK, rows - start), current=True)


def current(rows: int) -> dict[str, Any]:
    parts = list(current_chunks(rows))
    data: dict[str, Any] = {}
    for name in NUMERIC:
        data[name] = np.concatenate([p[name] for p in parts])
    for name in CATEGORICAL:
        data[name] = [v for p in parts for v in p[name]]
    return data
