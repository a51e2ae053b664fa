"""Condition types and the one closed list of reasons the operator writes into status.

Pure: the caller passes the time. ``lastTransitionTime`` moves only when a condition's
status changes, as the Kubernetes API conventions ask.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Any

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
DRIFTING = "Drifting"
DEGRADED = "Degraded"
INSUFFICIENT_DATA = "InsufficientData"


class Reason(enum.StrEnum):
    """Every reason the operator writes (conditions, version records and Events)."""

    # Model
    VERSION_READY = "VersionReady"
    NO_PROMOTABLE_VERSION = "NoPromotableVersion"
    TRAINING = "Training"
    TRAINING_STARTED = "TrainingStarted"
    CACHE_HIT = "CacheHit"
    VERSION_SUCCEEDED = "VersionSucceeded"
    VERSION_FAILED = "VersionFailed"
    CHAMPION_SET = "ChampionSet"
    CHALLENGER_SET = "ChallengerSet"
    LINEAGE_INCOMPLETE = "LineageIncomplete"
    OUTCOME_MISSING = "OutcomeMissing"
    OUTCOME_INVALID = "OutcomeInvalid"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    JOB_FAILED = "JobFailed"
    JOB_MISSING = "JobMissing"
    SPEC_INVALID = "SpecInvalid"
    CHALLENGER_REJECTED = "ChallengerRejected"
    RETRAIN_STARTED = "RetrainStarted"
    RETRAIN_REFUSED = "RetrainRefused"
    NOTHING_TO_RETRAIN = "NothingToRetrain"
    SCHEDULED_RETRAIN = "ScheduledRetrain"
    # Trainer reasons (docs/contracts.md §3), passed through.
    DATA_INVALID = "DataInvalid"
    POLICY_VIOLATION = "PolicyViolation"
    GATE_FAILED = "GateFailed"
    PARITY_FAILED = "ParityFailed"
    DIGEST_MISMATCH = "DigestMismatch"
    ESTIMATOR_INVALID = "EstimatorInvalid"
    STORE_CREDENTIALS_REJECTED = "StoreCredentialsRejected"
    STORE_ACCESS_DENIED = "StoreAccessDenied"
    STORE_BUCKET_MISSING = "StoreBucketMissing"
    STORE_UNREACHABLE = "StoreUnreachable"
    ARTIFACT_DIGEST_MISMATCH = "ArtifactDigestMismatch"
    STORE_FAILED = "StoreFailed"
    INTERNAL_ERROR = "InternalError"
    # Deployment
    MODEL_NOT_FOUND = "ModelNotFound"
    VERSION_NOT_AVAILABLE = "VersionNotAvailable"
    ROLLING_OUT = "RollingOut"
    AVAILABLE = "Available"
    VERSION_CHANGED = "VersionChanged"
    CANARY_CHANGED = "CanaryChanged"
    ROLLOUT_STARTED = "RolloutStarted"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    APPROVED = "Approved"
    SELF_APPROVAL_REFUSED = "SelfApprovalRefused"
    STEP_STARTED = "StepStarted"
    ANALYSIS_PASSED = "AnalysisPassed"
    ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
    ROLLED_BACK = "RolledBack"
    PROMOTED = "Promoted"
    KILL_SWITCH = "KillSwitch"
    HISTORY_BROKEN = "HistoryBroken"
    # Monitor
    DEPLOYMENT_NOT_FOUND = "DeploymentNotFound"
    SIDECAR_INJECTED = "SidecarInjected"
    NO_SUMMARIES = "NoSummaries"
    BELOW_MIN_SAMPLES = "BelowMinSamples"
    DRIFT_DETECTED = "DriftDetected"
    NO_DRIFT = "NoDrift"
    PERFORMANCE_BELOW_LIMIT = "PerformanceBelowLimit"
    FAIRNESS_BREACHED = "FairnessBreached"
    WITHIN_LIMITS = "WithinLimits"
    EVALUATED = "Evaluated"
    RETRAIN_REQUESTED = "RetrainRequested"
    RETRAIN_THROTTLED = "RetrainThrottled"
    # Any kind
    RECONCILED = "Reconciled"
    APPLY_FAILED = "ApplyFailed"


TRAINER_REASONS = frozenset(
    {
        Reason.DATA_INVALID,
        Reason.POLICY_VIOLATION,
        Reason.GATE_FAILED,
        Reason.PARITY_FAILED,
        Reason.DIGEST_MISMATCH,
        Reason.ESTIMATOR_INVALID,
        Reason.STORE_CREDENTIALS_REJECTED,
        Reason.STORE_ACCESS_DENIED,
        Reason.STORE_BUCKET_MISSING,
        Reason.STORE_UNREACHABLE,
        Reason.ARTIFACT_DIGEST_MISMATCH,
        Reason.STORE_FAILED,
        Reason.INTERNAL_ERROR,
    }
)

Condition = dict[str, Any]


def condition(type_: str, status: bool | None, reason: Reason, message: str) -> Condition:
    """A condition without times: :func:`merge` fills them in."""
    text = "Unknown" if status is None else ("True" if status else "False")
    return {"type": type_, "status": text, "reason": str(reason), "message": message}


def merge(
    previous: Sequence[Condition], desired: Iterable[Condition], *, generation: int, now: str
) -> list[Condition]:
    """The new conditions list: desired ones stamped with ``generation``, keeping each
    ``lastTransitionTime`` whose status did not change, and previous conditions of other
    types dropped (the operator owns the whole list)."""
    before = {c.get("type"): c for c in previous}
    result = []
    for item in desired:
        old = before.get(item["type"])
        changed = old is None or old.get("status") != item["status"]
        stamp = now if changed or not old or not old.get("lastTransitionTime") else old["lastTransitionTime"]
        result.append({**item, "lastTransitionTime": stamp, "observedGeneration": generation})
    return result


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.get("status") == "True"


def to_reason(text: str | None, default: Reason) -> Reason:
    """A reason from the closed list, or ``default`` for anything unknown."""
    try:
        return Reason(text) if text else default
    except ValueError:
        return default
