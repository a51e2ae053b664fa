"""One error family for the artifact store and data sources, with a closed list of reasons."""

from __future__ import annotations

from typing import Literal

StoreReason = Literal[
    "InvalidLocation",
    "InvalidSetting",
    "CredentialsRejected",
    "AccessDenied",
    "BucketMissing",
    "ObjectMissing",
    "DigestMismatch",
    "Unreachable",
    "StoreFailed",
]


class StoreError(Exception):
    """A store or data-source operation failed; ``reason`` is machine-readable, the text is for people."""

    def __init__(self, reason: StoreReason, message: str) -> None:
        super().__init__(message)
        self.reason: StoreReason = reason
