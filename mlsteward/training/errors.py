"""One error family for the trainer, each carrying a reason from the closed list in contracts §3.

Every failure the trainer knows about is a :class:`TrainingError`; the runner turns it into the
outcome line, and the exit code follows from the reason: 2 for bad input (data, spec, policy,
digest, estimator), 1 for everything else (store failures included: a network fault or a
fixed Secret may let the Job's retry succeed).
"""

from __future__ import annotations

import typing
from typing import Literal

from mlsteward.store.errors import StoreError, StoreReason

Reason = Literal[
    "DataInvalid",
    "PolicyViolation",
    "GateFailed",
    "ParityFailed",
    "DigestMismatch",
    "EstimatorInvalid",
    "StoreCredentialsRejected",
    "StoreAccessDenied",
    "StoreBucketMissing",
    "StoreUnreachable",
    "ArtifactDigestMismatch",
    "StoreFailed",
    "InternalError",
]
REASONS: tuple[Reason, ...] = typing.get_args(Reason)
# The object store's reasons (mlsteward.store.errors) as the trainer reports them: prefixed
# with Store (or Artifact), so a Model's status says which side failed.
_STORE_REASONS: dict[StoreReason, Reason] = {
    "CredentialsRejected": "StoreCredentialsRejected",
    "AccessDenied": "StoreAccessDenied",
    "BucketMissing": "StoreBucketMissing",
    "Unreachable": "StoreUnreachable",
    "DigestMismatch": "ArtifactDigestMismatch",
}
# Bad input: the caller can fix it by changing the spec or the data.
_BAD_INPUT: frozenset[Reason] = frozenset(
    {"DataInvalid", "PolicyViolation", "DigestMismatch", "EstimatorInvalid"}
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class TrainingError(Exception):
    """A training run that cannot produce an artifact, with the reason the operator reports."""

    reason: Reason = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.reason)


class DataInvalidError(TrainingError):
    """The spec cannot be read, or the dataset is unreadable or does not match the spec."""

    reason: Reason = "DataInvalid"


class PolicyViolationError(TrainingError):
    """A protected or sensitive column would become a model input."""

    reason: Reason = "PolicyViolation"


class DigestMismatchError(TrainingError):
    """The dataset's sha256 differs from the digest pinned in the spec."""

    reason: Reason = "DigestMismatch"

    def __init__(self, message: str, actual_sha256: str) -> None:
        super().__init__(message)
        self.actual_sha256 = actual_sha256


class EstimatorInvalidError(TrainingError):
    """The estimator is not allow-listed, or its parameters are unknown or invalid."""

    reason: Reason = "EstimatorInvalid"


class ParityFailedError(TrainingError):
    """The ONNX model disagrees with the fitted pipeline beyond the spec's parity limits."""

    reason: Reason = "ParityFailed"


class StoreFailureError(TrainingError):
    """The artifact store (or a dataset's bucket) refused or could not be reached; the reason
    says how (credentials, access, bucket, network after retries, a checksum the store refused)."""

    def __init__(self, message: str, reason: Reason) -> None:
        super().__init__(message)
        self.reason = reason


def store_failure(error: StoreError, message: str) -> StoreFailureError:
    """The trainer's error for a store failure, keeping the store's precise reason."""
    return StoreFailureError(message, _STORE_REASONS.get(error.reason, "StoreFailed"))


class InternalError(TrainingError):
    """Anything else: a bug, a conversion failure, an artifact that cannot be assembled."""

    reason: Reason = "InternalError"


def exit_code_for(reason: Reason | None) -> int:
    if reason is None or reason == "GateFailed":
        return EXIT_OK
    return EXIT_BAD_INPUT if reason in _BAD_INPUT else EXIT_FAILED
