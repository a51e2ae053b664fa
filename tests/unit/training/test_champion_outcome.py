"""The champion flags' validation and the champion fields of the outcome under the 4 KiB limit."""

from __future__ import annotations

import pathlib

import orjson
import pytest

from mlsteward.training import outcome, settings

DIGEST = "ab" * 32


def test_the_champion_flags_go_together_and_need_a_sha256(tmp_path: pathlib.Path) -> None:
    base = ["--store", str(tmp_path), "--spec", "s.yaml"]
    with pytest.raises(settings.SettingsError, match="go together"):
        settings.from_args([*base, "--champion-artifact", str(tmp_path)], {})
    with pytest.raises(settings.SettingsError, match="--champion-digest must be a sha256"):
        settings.from_args([*base, "--champion-artifact", str(tmp_path), "--champion-digest", "sha256:x"], {})
    environ = {"MLSTEWARD_CHAMPION_ARTIFACT": "s3://b/p", "MLSTEWARD_CHAMPION_DIGEST": DIGEST}
    config = settings.from_args(base, environ)
    assert (config.champion_artifact, config.champion_digest) == ("s3://b/p", DIGEST)


def test_the_champion_fields_are_absent_without_a_champion_and_dropped_before_4_kib() -> None:
    plain = outcome.build(reason=None, message="ok", artifact={"digest": DIGEST, "uri": "file:///a"})
    assert "champion_metrics" not in plain and "champion_comparison" not in plain
    comparison = {"digest": DIGEST, "same_holdout": True, "reason": None}
    small = outcome.build(
        reason=None,
        message="ok",
        artifact={"digest": DIGEST, "uri": "file:///a"},
        metrics={"accuracy": 0.9},
        champion_metrics={"accuracy": 0.8, "log_loss": float("nan")},
        champion_comparison=comparison,
    )
    assert orjson.loads(outcome.encode(small))["champion_metrics"] == {"accuracy": 0.8}
    many = {f"fairness.column_{i}.demographic_parity_difference": 0.1 for i in range(80)}
    large = outcome.build(
        reason=None,
        message="ok",
        artifact={"digest": DIGEST, "uri": "file:///a"},
        metrics=many,
        champion_metrics=many,
        champion_comparison=comparison,
    )
    encoded = outcome.encode(large)
    slim = orjson.loads(encoded)
    assert len(encoded) < outcome.MAX_TERMINATION_BYTES and slim["outcome"] == "succeeded"
    assert slim["champion_metrics"] is None and slim["champion_comparison"]["same_holdout"] is False
    assert "4 KiB" in slim["champion_comparison"]["reason"]
