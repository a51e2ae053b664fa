"""``--champion-artifact``: the trainer scores the champion's ONNX model on its own holdout.

Real processes: the dataset generator's command line, two ``mlsteward train`` runs into a real
store, and ONNX Runtime recomputing the champion's metrics on the challenger's holdout rows.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest
import yaml

from mlsteward.store import artifacts
from mlsteward.training import champion, conversion, data, errors, metrics, pipeline, specs

from .conftest import REPO, credit_spec, train

ROWS = 1500


def _dataset(path: pathlib.Path, *extra: str) -> pathlib.Path:
    command = [sys.executable, "-m", "mlsteward.training.datasets", "--rows", str(ROWS), "--out", str(path)]
    subprocess.run([*command, *extra], check=True, cwd=REPO, capture_output=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def champion_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("champion")
    store = root / "store"
    run = train(store, credit_spec(str(_dataset(root / "v1.parquet"))))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "champion_metrics" not in run.outcome  # no champion given: the contract's fields are absent
    return store, run.outcome


def test_the_champion_is_scored_on_the_challengers_own_holdout(
    tmp_path: pathlib.Path, champion_run: tuple[pathlib.Path, dict[str, Any]]
) -> None:
    store, v1 = champion_run
    shifted = _dataset(tmp_path / "v2.parquet", "--shift", "--seed", "1")
    spec = credit_spec(str(shifted))
    termination = tmp_path / "termination-log"
    v1_digest = v1["artifact"]["digest"]
    run = train(
        store,
        spec,
        args=[
            "--champion-artifact",
            str(store),
            "--champion-digest",
            v1_digest,
            "--termination-message-path",
            str(termination),
        ],
    )
    assert run.returncode == 0, run.stderr[-3000:]
    outcome = run.outcome
    assert json.loads(termination.read_bytes()) == outcome and len(termination.read_bytes()) < 4096
    assert outcome["champion_comparison"] == {"digest": v1_digest, "same_holdout": True, "reason": None}
    ours = outcome["champion_metrics"]
    assert set(v1["metrics"]) <= set(ours)  # the same metric names
    for column in ("sex", "race"):
        for gap in champion.FAIRNESS_GAPS:
            assert f"fairness.{column}.{gap}" in ours and f"fairness.{column}.{gap}" in outcome["metrics"]
    report = json.loads(
        (pathlib.Path(outcome["artifact"]["uri"].removeprefix("file://")) / "metrics.json").read_text()
    )
    assert report["champion_metrics"] == ours

    # Recompute: v1's verified model.onnx on the rows v2 held out (same seed and split as the trainer).
    parsed = specs.parse_spec(yaml.safe_dump(spec))
    raw = data.fetch(str(shifted), None, None)
    columns = [parsed.dataset.target, *parsed.dataset.features, *parsed.dataset.sensitive]
    frame = data.validate(data.parse(raw, columns), parsed)
    target = frame[parsed.dataset.target].to_numpy()
    split = pipeline.split(target, parsed.task, parsed.split.test_fraction, parsed.estimator.seed)
    test = frame.iloc[split.test].reset_index(drop=True)
    model_bytes = artifacts.open_artifact_in_store(store, v1_digest).read("model.onnx")
    features, categorical = list(parsed.dataset.features), list(parsed.dataset.categorical)
    predicted = conversion.predict_onnx(
        model_bytes, conversion.feeds(test, features, categorical), "classification"
    )
    assert predicted.labels is not None
    classes = np.unique(target)
    with warnings.catch_warnings():  # float32 probabilities sum to 1 only within ONNX's precision
        warnings.simplefilter("ignore", UserWarning)
        expected = metrics.classification(
            test[parsed.dataset.target].to_numpy(), predicted.labels, predicted.values, classes
        )
    for name, value in expected.items():
        if not np.isnan(value):
            assert ours[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    # and they differ from what v1 recorded on its own holdout: another population, other rows
    assert any(ours[name] != pytest.approx(v1["metrics"][name]) for name in v1["metrics"])


def test_a_champion_with_other_features_is_recorded_as_not_comparable(
    tmp_path: pathlib.Path, champion_run: tuple[pathlib.Path, dict[str, Any]]
) -> None:
    store, v1 = champion_run
    spec = credit_spec(str(_dataset(tmp_path / "v3.parquet")))
    spec["dataset"]["features"] = spec["dataset"]["features"][:-1]  # drops home_ownership
    spec["dataset"]["categorical"] = ["purpose"]
    uri = v1["artifact"]["uri"]  # the artifact's own URI works as well as its store
    run = train(store, spec, args=["--champion-artifact", uri, "--champion-digest", v1["artifact"]["digest"]])
    assert run.returncode == 0, run.stderr[-3000:]
    comparison = run.outcome["champion_comparison"]
    assert run.outcome["champion_metrics"] is None and comparison["same_holdout"] is False
    assert "features" in comparison["reason"] and "home_ownership" in comparison["reason"]


def test_a_champion_whose_bytes_do_not_match_its_digest_is_never_used(
    tmp_path: pathlib.Path, champion_run: tuple[pathlib.Path, dict[str, Any]]
) -> None:
    store, v1 = champion_run
    digest = v1["artifact"]["digest"]
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    model = artifacts.artifact_dir(copy, digest) / "model.onnx"
    model.chmod(0o644)
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(errors.InternalError, match=r"model\.onnx does not match"):
        champion.load(str(copy), digest, tmp_path / "cache")
    with pytest.raises(errors.InternalError, match="0000"):
        champion.load(str(store), "0" * 64, tmp_path / "cache")
    assert champion.load(str(store), digest, tmp_path / "cache").schema["task"] == "classification"
