"""A traffic generator: rows of a data frame sent as Open Inference Protocol v2 requests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pandas as pd


def infer_body(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str], metadata: Sequence[str] = ()
) -> dict[str, Any]:
    """One tensor per column: FP64 for numerics, BYTES for categoricals and metadata.

    Missing values travel as JSON null, which the protocol defines as missing.
    """
    inputs = []
    for column in [*numeric, *categorical, *metadata]:
        series = frame[column]
        values = series.astype(object).where(series.notna(), None).tolist()
        datatype = "FP64" if column in numeric else "BYTES"
        inputs.append({"name": column, "shape": [len(values), 1], "datatype": datatype, "data": values})
    return {"inputs": inputs}


def send(
    url: str,
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    metadata: Sequence[str] = (),
    *,
    batch: int = 50,
) -> int:
    """POST ``frame`` to ``url`` (an .../infer endpoint) in batches; return the rows answered."""
    answered = 0
    with httpx.Client(timeout=30) as client:
        for start in range(0, len(frame), batch):
            chunk = frame[start : start + batch]
            response = client.post(url, json=infer_body(chunk, numeric, categorical, metadata))
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:500]}")
            answered += len(chunk)
    return answered
