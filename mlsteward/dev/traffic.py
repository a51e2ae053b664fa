"""A traffic generator: rows of a data frame sent as Open Inference Protocol v2 requests,
once (``send``) or as steady background traffic (``Background``)."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
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


class Background:
    """Sends rows to a serving pod from a thread until stopped, as steady live traffic.

    ``url_of`` names the current .../infer endpoint (None while there is no serving pod); it is
    asked again after any failure, so the traffic follows a pod that restarted or was replaced.
    ``frame`` may be swapped while it runs. Answers are counted by the ``model_version`` they
    name; failures are counted, never raised, so a caller asserts on what was answered.
    """

    def __init__(
        self,
        url_of: Callable[[], str | None],
        frame: pd.DataFrame,
        numeric: Sequence[str],
        categorical: Sequence[str],
        metadata: Sequence[str] = (),
        *,
        batch: int = 10,
        pause_s: float = 0.05,
    ) -> None:
        self.url_of, self.frame = url_of, frame
        self.columns = (list(numeric), list(categorical), list(metadata))
        self.batch, self.pause_s = batch, pause_s
        self.versions: collections.Counter[str] = collections.Counter()
        self.failures = 0
        self.last_version: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def start(self) -> Background:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def __enter__(self) -> Background:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        url: str | None = None
        position = 0
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                frame = self.frame
                if position + self.batch > len(frame):
                    position = 0
                chunk = frame[position : position + self.batch]
                position += self.batch
                try:
                    url = url or self.url_of()
                    if url is None:
                        self._stop.wait(1)
                        continue
                    response = client.post(url, json=infer_body(chunk, *self.columns))
                    response.raise_for_status()
                    self.last_version = str(response.json().get("model_version"))
                    self.versions[self.last_version] += 1
                except Exception:  # any failure: count it, find the pod again, carry on
                    self.failures += 1
                    url = None
                    self._stop.wait(0.5)
                    continue
                self._stop.wait(self.pause_s)
