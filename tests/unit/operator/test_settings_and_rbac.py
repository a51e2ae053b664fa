"""Settings map one-to-one onto flags and environment variables; the RBAC is least-privilege,
versionless and committed as generated."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest
import yaml

from mlsteward.operator import rbac
from mlsteward.operator import settings as settings_module

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_every_settings_field_has_exactly_one_flag() -> None:
    flags = {
        action.dest
        for action in settings_module.parser()._actions
        if action.option_strings and action.dest != "help"
    }
    assert flags == {field.name for field in dataclasses.fields(settings_module.Settings)}


def test_a_flag_wins_over_the_environment_which_wins_over_the_default() -> None:
    environ = {"MLSTEWARD_OPERATOR_IMAGE": "from-env:1", "MLSTEWARD_OPERATOR_WORKERS": "3"}
    settings = settings_module.parse(["--image", "from-flag:2", "--namespaces", "a, b"], environ)
    assert settings.image == "from-flag:2" and settings.workers == 3 and settings.namespaces == ("a", "b")
    assert settings_module.parse([], {}).image == "mlsteward:0.1.0"


def test_a_node_selector_is_parsed_and_a_malformed_one_is_refused() -> None:
    parsed = settings_module.parse(["--training-node-selector", "pool=gpu,zone=a"], {})
    assert parsed.training_node_selector == (("pool", "gpu"), ("zone", "a"))
    with pytest.raises(ValueError, match="key=value"):
        settings_module.parse(["--training-node-selector", "pool"], {})


def test_a_relative_store_root_is_refused() -> None:
    with pytest.raises(ValueError, match="store_root"):
        settings_module.parse(["--store-root", "stores"], {})


def test_the_committed_rbac_yaml_is_generated_from_the_rules() -> None:
    committed = (REPO_ROOT / "deploy" / "rbac.yaml").read_text()
    assert committed == rbac.render(), (
        "deploy/rbac.yaml is stale: run `mlsteward operator rbac > deploy/rbac.yaml`"
    )
    role = list(yaml.safe_load_all(committed))[1]
    assert role["kind"] == "ClusterRole" and role["rules"] == rbac.rules()


def test_api_groups_are_named_without_versions_and_nothing_is_a_wildcard() -> None:
    for rule in rbac.rules():
        assert all("/" not in group for group in rule["apiGroups"]), rule
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]


def test_the_operator_may_not_read_secrets_or_delete_what_the_garbage_collector_removes() -> None:
    rules = rbac.rules()
    assert not any("secrets" in r["resources"] for r in rules)
    deletable = {res for r in rules if "delete" in r["verbs"] for res in r["resources"]}
    assert deletable == {"horizontalpodautoscalers"}
