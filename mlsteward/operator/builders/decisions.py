"""The decision-log part of the drift-monitor sidecar: environment from the Deployment's policy.

Pure: the Deployment's ``spec.decisionLog`` and where the store is, in; the sidecar's
``MLSTEWARD_MONITOR_DECISION_LOG_*`` variables (docs/monitoring.md), out. The chain is the pod's
name (downward API), so a restarted container continues its chain and every replica has its own.
With the log on, a PVC store must be mounted read-write in the sidecar (``read_only_store``).
"""

from __future__ import annotations

from typing import Any

from mlsteward.api import audit as api_audit

PREFIX = "MLSTEWARD_MONITOR_DECISION_LOG_"


def read_only_store(policy: api_audit.DecisionLogPolicy) -> bool:
    """Whether the sidecar may mount a PVC store read-only (only when it writes no decision log)."""
    return not policy.enabled


def decision_log_env(
    policy: api_audit.DecisionLogPolicy, *, store_location: str, namespace: str, deployment: str
) -> list[dict[str, Any]]:
    """The sidecar's environment for the decision log; empty when the policy turns it off."""
    if not policy.enabled:
        return []
    values = {
        "STORE": store_location,
        "NAMESPACE": namespace,
        "DEPLOYMENT": deployment,
        "INPUTS": "true" if policy.log_inputs else "false",
        "RETENTION": policy.retention,
        "FLUSH_SECONDS": f"{policy.flush_interval_seconds:g}",
        "SEGMENT_RECORDS": str(policy.segment_max_records),
        "QUEUE_RECORDS": str(policy.max_queued_records),
    }
    env: list[dict[str, Any]] = [{"name": PREFIX + key, "value": value} for key, value in values.items()]
    env.append({"name": PREFIX + "CHAIN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    return env
