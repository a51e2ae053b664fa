"""Reading the spec (file or variable, YAML or JSON, bare or whole Model) and the trainer's settings."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import pytest
import yaml

from mlsteward.training import errors, settings, specs

BARE: dict[str, Any] = {
    "task": "classification",
    "dataset": {
        "uri": "/data/credit.parquet",
        "target": "default",
        "features": ["income", "purpose"],
        "categorical": ["purpose"],
    },
    "estimator": {"className": "LogisticRegression", "params": {"C": 0.5}, "seed": 3},
}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(BARE),
        yaml.safe_dump(BARE),
        yaml.safe_dump(
            {"apiVersion": "mlsteward.io/v1alpha1", "kind": "Model", "metadata": {"name": "m"}, "spec": BARE}
        ),
        json.dumps({"apiVersion": "mlsteward.io/v1alpha1", "kind": "Model", "spec": BARE}),
    ],
    ids=["bare-json", "bare-yaml", "model-yaml", "model-json"],
)
def test_a_spec_is_read_bare_or_inside_a_model_in_json_or_yaml(text: str) -> None:
    spec = specs.parse_spec(text)

    assert spec.estimator.class_name == "LogisticRegression" and spec.estimator.seed == 3
    assert spec.dataset.categorical == ["purpose"]


def test_another_kind_is_refused() -> None:
    with pytest.raises(errors.DataInvalidError, match="'Deployment'"):
        specs.parse_spec(
            json.dumps({"apiVersion": "mlsteward.io/v1alpha1", "kind": "Deployment", "spec": BARE})
        )


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"dataset": {**BARE["dataset"], "categorical": ["region"]}}, errors.DataInvalidError, "region"),
        (
            {"dataset": {**BARE["dataset"], "features": ["income", "income"]}},
            errors.DataInvalidError,
            "more than once",
        ),
        ({"dataset": {**BARE["dataset"], "sensitive": ["default"]}}, errors.DataInvalidError, "sensitive"),
        (
            {"estimator": {"className": "RandomForestRegressor"}},
            errors.EstimatorInvalidError,
            "not a classification",
        ),
        ({"estimator": {"className": "XGBClassifier"}}, errors.EstimatorInvalidError, "className"),
        ({"split": {"testFraction": 0.9}}, errors.DataInvalidError, "testFraction"),
        ({"unknownField": 1}, errors.DataInvalidError, "unknownField"),
    ],
)
def test_cross_field_and_field_errors_name_the_field(
    change: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        specs.parse_spec(json.dumps({**BARE, **change}))


def test_the_spec_hash_ignores_runtime_fields_and_explicit_defaults_but_not_the_model() -> None:
    base = specs.spec_hash(specs.parse_spec(json.dumps(BARE)))
    runtime = {**BARE, "resources": {"limits": {"memory": "2Gi"}}, "trainingDeadlineSeconds": 600}
    explicit_default = {**BARE, "split": {"testFraction": 0.2}}
    other_seed = {**BARE, "estimator": {**BARE["estimator"], "seed": 4}}

    assert specs.spec_hash(specs.parse_spec(json.dumps(runtime))) == base
    assert specs.spec_hash(specs.parse_spec(json.dumps(explicit_default))) == base
    assert specs.spec_hash(specs.parse_spec(json.dumps(other_seed))) != base


def test_every_settings_field_has_one_flag_and_one_variable() -> None:
    fields = {f.name for f in dataclasses.fields(settings.TrainSettings)}
    parser_flags = {a.dest for a in settings.build_parser()._actions if a.dest != "help"}

    assert set(settings.FLAGS) | {"spec_text"} == fields
    assert parser_flags == set(settings.FLAGS)
    envs = [env for _, env, _ in settings.FLAGS.values()] + [settings.SPEC_TEXT_ENV]
    assert len(set(envs)) == len(envs) and all(e.startswith("MLSTEWARD_") for e in envs)


def test_flags_win_over_the_environment_which_fills_the_rest(tmp_path: pathlib.Path) -> None:
    environ = {
        "MLSTEWARD_STORE": "/env/store",
        "MLSTEWARD_NAME": "from-env",
        "MLSTEWARD_MODEL_SPEC": "{}",
        "MLSTEWARD_IMAGE_DIGEST": "sha256:abc",
    }

    config = settings.from_args(["--store", str(tmp_path), "--termination-message-path", "/tmp/t"], environ)

    assert config.store == str(tmp_path.resolve()) and config.name == "from-env" and config.spec_text == "{}"
    assert config.image_digest == "sha256:abc" and config.termination_message_path == pathlib.Path("/tmp/t")


@pytest.mark.parametrize(
    ("argv", "environ", "words"),
    [
        ([], {"MLSTEWARD_MODEL_SPEC": "{}"}, "--store"),
        (["--store", "/s"], {}, "MLSTEWARD_MODEL_SPEC"),
        (["--store", "/s", "--spec", "f", "--proxy-sample-rows", "ten"], {}, "integer"),
    ],
)
def test_unrunnable_settings_say_what_is_missing(
    argv: list[str], environ: dict[str, str], words: str
) -> None:
    with pytest.raises(settings.SettingsError, match=words):
        settings.from_args(argv, environ)
