"""Synthetic data and reference profiles for the monitor's unit tests.

Profiles are built with ``mlsteward.monitoring.profiling``, which writes exactly the format
of docs/contracts.md §2 (``test_profiles.py`` checks it by hand on a small example).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mlsteward.monitoring import profiles, profiling

Columns = dict[str, Any]

NUMERIC = ("age", "income", "balance", "tenure")
CATEGORICAL = ("purpose", "region", "channel")
PURPOSES = ("car", "home", "education", "business", "travel")
REGIONS = tuple(f"r{i}" for i in range(8))
CHANNELS = ("web", "branch", "phone")


def reference_columns(rng: np.random.Generator, n: int) -> Columns:
    """Training-like data: no shift applied."""
    return {
        "age": rng.normal(40.0, 10.0, n),
        "income": rng.lognormal(10.0, 0.5, n),
        "balance": rng.normal(0.0, 1.0, n),
        "tenure": rng.uniform(0.0, 20.0, n),
        "purpose": rng.choice(PURPOSES, n, p=[0.4, 0.3, 0.15, 0.1, 0.05]).tolist(),
        "region": rng.choice(REGIONS, n).tolist(),
        "channel": rng.choice(CHANNELS, n, p=[0.6, 0.3, 0.1]).tolist(),
    }


def shifted_columns(rng: np.random.Generator, n: int, reference_max_balance: float) -> Columns:
    """Production-like data with known shifts in age, balance, purpose and channel only."""
    columns = reference_columns(rng, n)
    columns["age"] = columns["age"] + 5.0  # half a standard deviation
    balance = columns["balance"]
    past_max = rng.random(n) < 0.05  # 5% of rows pushed past the training maximum
    balance[past_max] = reference_max_balance + rng.uniform(0.5, 1.5, int(past_max.sum()))
    columns["purpose"] = rng.choice(PURPOSES, n, p=[0.15, 0.25, 0.2, 0.2, 0.2]).tolist()
    channel = np.array(columns["channel"], dtype=object)
    channel[rng.random(n) < 0.2] = "app"  # a channel never seen in training
    columns["channel"] = channel.tolist()
    return columns


def predictions(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    score = rng.beta(2.0, 5.0, n)
    return ["1" if s >= 0.5 else "0" for s in score], score


def build_reference(columns: Columns, rng: np.random.Generator) -> tuple[dict[str, Any], profiles.Reference]:
    labels, scores = predictions(rng, len(columns["age"]))
    document = profiling.profile(columns, prediction_label=labels, prediction_score=scores)
    schema = {
        "task": "classification",
        "target": "default",
        "features": [{"name": n, "kind": "numeric"} for n in NUMERIC]
        + [{"name": c, "kind": "categorical"} for c in CATEGORICAL],
        "classes": ["0", "1"],
        "positive_class": "1",
        "sensitive": ["sex"],
    }
    return document, profiles.parse_reference(document, schema)


def batch_document(columns: Columns, start: int, stop: int, rng: np.random.Generator) -> dict[str, Any]:
    """A ``POST /v1/rows`` body (docs/contracts.md §4) for rows ``start:stop``."""
    n = stop - start
    labels, scores = predictions(rng, n)
    return {
        "model_version": "3",
        "route": "champion",
        "time": 1764000000.0,
        "request_ids": [f"req-{i}" for i in range(start, stop)],
        "features": {
            name: (values[start:stop].tolist() if isinstance(values, np.ndarray) else values[start:stop])
            for name, values in columns.items()
        },
        "prediction": {"label": labels, "score": scores.tolist()},
        "metadata": {"sex": rng.choice(["F", "M"], n).tolist()},
    }


@pytest.fixture(scope="session")
def reference_data() -> Columns:
    return reference_columns(np.random.default_rng(1), 20_000)


@pytest.fixture(scope="session")
def reference(reference_data: Columns) -> profiles.Reference:
    return build_reference(reference_data, np.random.default_rng(2))[1]


@pytest.fixture(scope="session")
def reference_document(reference_data: Columns) -> dict[str, Any]:
    return build_reference(reference_data, np.random.default_rng(2))[0]


@pytest.fixture(scope="session")
def shifted_data(reference_data: Columns) -> Columns:
    return shifted_columns(np.random.default_rng(3), 5_000, float(np.max(reference_data["balance"])))


@pytest.fixture(scope="session")
def unshifted_data() -> Columns:
    return reference_columns(np.random.default_rng(4), 5_000)


BatchMaker = Callable[[Columns, int, int], dict[str, Any]]


@pytest.fixture
def make_batch() -> BatchMaker:
    rng = np.random.default_rng(5)

    def make(columns: Columns, start: int, stop: int) -> dict[str, Any]:
        return batch_document(columns, start, stop, rng)

    return make
