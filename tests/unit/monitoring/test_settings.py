"""Flags, environment and settings stay in step; the config file is the Monitor spec."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from mlsteward.monitoring import cli, settings

DIGEST = "a" * 64


def test_every_settings_field_has_exactly_one_flag_of_the_same_name() -> None:
    flags = {a.dest: a.option_strings for a in settings.parser()._actions if a.dest != "help"}

    assert flags == {name: [settings.flag_name(name)] for name in settings.Settings.model_fields}


def test_flags_win_over_the_environment_which_wins_over_defaults() -> None:
    environ = {"MLSTEWARD_MONITOR_PORT": "9000", "MLSTEWARD_MONITOR_HOST": "127.0.0.2"}

    config = settings.from_args(["--profile-artifact", "/x", "--digest", DIGEST, "--port", "9100"], environ)

    assert config.port == 9100
    assert config.host == "127.0.0.2"
    assert config.max_missing_share == 0.5
    assert config.profile_artifact == pathlib.Path("/x")


def test_a_malformed_digest_is_refused() -> None:
    with pytest.raises(ValueError, match="digest"):
        settings.from_args(["--profile-artifact", "/x", "--digest", "nothex"], {})


def test_the_example_monitor_manifest_is_a_valid_config_file() -> None:
    path = pathlib.Path(__file__).parents[3] / "examples" / "credit-monitor.yaml"

    spec = yaml.safe_load(path.read_text())["spec"]

    config = settings.load_config(path)
    rules = settings.rules(config)

    assert config.window.size == spec["window"]["size"]
    assert rules.min_samples == spec["window"]["minSamples"]
    assert rules.consecutive_windows == spec["drift"]["consecutiveWindows"]
    assert rules.numeric_test == spec["drift"]["numericTest"]
    assert config.fairness[0].attribute == spec["fairness"][0]["attribute"]


def test_a_per_feature_override_changes_only_that_feature(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "monitor.json"
    path.write_text('{"drift": {"features": [{"name": "age", "test": "psi", "threshold": 0.2}]}}')

    rules = settings.rules(settings.load_config(path))

    assert rules.overrides == {"age": ("psi", 0.2)}
    assert rules.numeric_threshold == 0.1


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30.0), ("15m", 900.0), ("1h30m", 5400.0)])
def test_durations_use_the_api_grammar(text: str, seconds: float) -> None:
    assert settings.parse_duration(text) == seconds


def test_a_bad_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="duration"):
        settings.parse_duration("5 minutes")


def test_the_sidecar_asks_the_c_allocator_to_keep_freed_memory_for_reuse() -> None:
    """glibc (Debian, the image and CI) takes the settings; they bound what is kept to 64 MiB."""
    assert cli.keep_freed_memory()
