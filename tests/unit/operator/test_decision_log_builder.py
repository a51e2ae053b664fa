"""The sidecar's decision-log environment: from the Deployment's policy to `mlsteward monitor`'s settings."""

from __future__ import annotations

import pathlib

from mlsteward.api import deployment as api_deployment
from mlsteward.monitoring import settings as monitor_settings
from mlsteward.operator.builders import decisions


def spec(**decision_log: object) -> api_deployment.DeploymentSpec:
    return api_deployment.DeploymentSpec.model_validate(
        {"modelRef": {"name": "credit"}, "decisionLog": decision_log}
    )


def test_the_policy_becomes_the_sidecars_settings_one_to_one() -> None:
    policy = spec(logInputs=True, retention="200d", flushIntervalSeconds=2.5).decision_log
    env = decisions.decision_log_env(policy, store_location="s3://b/p", namespace="risk", deployment="credit")
    plain = {e["name"]: e["value"] for e in env if "value" in e}
    plain["MLSTEWARD_MONITOR_DECISION_LOG_CHAIN"] = "credit-7f9c-0"  # what the downward API gives the pod
    chain = next(e for e in env if e["name"].endswith("_CHAIN"))
    assert chain["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    config = monitor_settings.from_args(["--profile-artifact", "/a", "--digest", "a" * 64], plain)
    assert config.decision_log_store == "s3://b/p"
    assert (config.decision_log_namespace, config.decision_log_deployment) == ("risk", "credit")
    assert config.decision_log_inputs is True and config.decision_log_retention == "200d"
    assert config.decision_log_flush_seconds == 2.5
    assert config.decision_log_segment_records == policy.segment_max_records
    assert config.decision_log_queue_records == policy.max_queued_records
    assert config.profile_artifact == pathlib.Path("/a")
    assert not decisions.read_only_store(policy)


def test_a_disabled_log_adds_nothing_and_keeps_the_store_read_only() -> None:
    policy = spec(enabled=False).decision_log
    assert decisions.decision_log_env(policy, store_location="/store", namespace="n", deployment="d") == []
    assert decisions.read_only_store(policy)


def test_the_default_policy_logs_no_inputs_for_180_days() -> None:
    env = decisions.decision_log_env(
        spec().decision_log, store_location="/store", namespace="n", deployment="d"
    )
    plain = {e["name"]: e.get("value") for e in env}
    assert plain["MLSTEWARD_MONITOR_DECISION_LOG_INPUTS"] == "false"
    assert plain["MLSTEWARD_MONITOR_DECISION_LOG_RETENTION"] == "180d"
