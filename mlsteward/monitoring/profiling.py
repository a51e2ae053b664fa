"""Building a reference profile document (docs/contracts.md §2) from columns of data.

Pure: arrays in, a JSON-ready dict out. The trainer writes the profiles that production
uses; this module exists so that tests, the benchmark and a laptop user can profile data
without training a model, in exactly the same format.

Usage::

    document = profiling.profile(
        {"income": income_array, "purpose": purpose_list},
        prediction_label=labels, prediction_score=scores,
    )
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlsteward.monitoring import profiles

DEFAULT_BINS = 10


def numeric_summary(
    values: NDArray[np.float64] | Sequence[float | None], bins: int = DEFAULT_BINS
) -> dict[str, Any]:
    array = np.asarray(values, dtype=np.float64)
    present = array[~np.isnan(array)]
    if present.size == 0:
        raise ValueError("a numeric column needs at least one value")
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 2:  # a constant column: one bin of zero width is not allowed, widen it
        edges = np.array([edges[0], np.nextafter(edges[0], np.inf)])
    k = edges.size - 1
    index = np.searchsorted(edges, present, side="right")
    index[present == edges[-1]] = k
    counts = np.bincount(index, minlength=k + 2).tolist()
    counts.append(int(array.size - present.size))
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "counts": [int(c) for c in counts],
        "mean": float(present.mean()),
        "std": float(present.std()),
    }


def categorical_summary(values: Sequence[object]) -> dict[str, Any]:
    tally = collections.Counter(_category(v) for v in values)
    missing = tally.pop(None, 0)
    ranked = sorted(tally.items(), key=lambda item: (-item[1], item[0]))
    top = ranked[: profiles.MAX_CATEGORIES]
    other = sum(n for _, n in ranked[profiles.MAX_CATEGORIES :])
    return {
        "kind": "categorical",
        "categories": [value for value, _ in top],
        "counts": [n for _, n in top] + [other, 0, missing],
    }


def _category(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def profile(
    features: Mapping[str, NDArray[Any] | Sequence[Any]],
    *,
    prediction_label: Sequence[object] | None = None,
    prediction_score: NDArray[np.float64] | Sequence[float] | None = None,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """Numeric arrays (float dtype) become numeric summaries, anything else categorical."""
    rows = 0
    summaries: dict[str, Any] = {}
    for name, values in features.items():
        rows = len(values)
        is_numeric = isinstance(values, np.ndarray) and values.dtype.kind in "fiu"
        if is_numeric:
            summaries[name] = numeric_summary(values, bins)
        else:
            summaries[name] = categorical_summary(
                values.tolist() if isinstance(values, np.ndarray) else values
            )
    return {
        "schema": profiles.PROFILE_SCHEMA,
        "rows": rows,
        "features": summaries,
        "prediction": {
            "label": None if prediction_label is None else categorical_summary(prediction_label),
            "score": None if prediction_score is None else numeric_summary(prediction_score, bins),
        },
    }
