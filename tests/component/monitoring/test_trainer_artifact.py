"""The monitor on a real artifact written by ``mlsteward train`` (the trainer's actual output)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Any

import numpy as np
import orjson
import pytest
import yaml

from mlsteward.training import datasets

MLSTEWARD = pathlib.Path(sys.executable).parent / "mlsteward"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, str]:
    work = tmp_path_factory.mktemp("trained")
    data = work / "credit.parquet"
    datasets.write(datasets.generate(4_000, seed=3), data)
    spec = datasets.example_spec(str(data))
    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLSTEWARD_")}
    result = subprocess.run(
        [str(MLSTEWARD), "train", "--spec", str(spec_path), "--store", str(work / "store")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=environment,
    )
    outcome = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["artifact"] is not None, result.stderr[-3000:]
    return pathlib.Path(outcome["artifact"]["uri"].removeprefix("file://")), outcome["artifact"]["digest"]


def _body(frame: Any, rng: np.random.Generator) -> dict[str, Any]:
    n = len(frame)
    score = rng.beta(2.0, 5.0, n)
    features: dict[str, list[Any]] = {}
    for name in datasets.EXAMPLE_FEATURES:
        column = frame[name]
        features[name] = (
            column.astype(str).tolist()
            if name in ("purpose", "home_ownership")
            else column.astype(float).tolist()
        )
    return {
        "model_version": "1",
        "route": "champion",
        "request_ids": [f"req-{i}" for i in range(n)],
        "features": features,
        "prediction": {"label": ["1" if s >= 0.5 else "0" for s in score], "score": score.tolist()},
        "metadata": {"sex": frame["sex"].astype(str).tolist()},
    }


def test_the_monitor_loads_a_trained_artifact_and_sees_the_population_shift(
    trained: tuple[pathlib.Path, str], tmp_path: pathlib.Path, monitor_factory: Any, artifact: Any
) -> None:
    path, digest = trained
    profile = orjson.loads((path / "profile.json").read_bytes())
    rng = np.random.default_rng(1)
    monitors = []
    for shift in (False, True):
        monitor = monitor_factory(artifact_override=(path, digest))
        response = monitor.post("/v1/rows", _body(datasets.generate(2_000, seed=9, shift=shift), rng))
        assert response.status_code == 202, response.text
        monitors.append(monitor.get("/summary").json()["evaluation"])

    calm, shifted = monitors
    assert {f["name"] for f in calm["features"] if f["role"] == "feature"} == set(profile["features"])
    assert [f["name"] for f in calm["features"] if f["role"] == "feature" and f["state"] == "drift"] == []
    assert {f["name"] for f in shifted["features"] if f["state"] == "drift"} & {"purpose", "home_ownership"}
