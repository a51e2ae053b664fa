"""The ``Approval`` resource: one approver's consent to one exact model version on one Deployment.

Immutable once created. The API server itself records who approved: an admission policy
(deploy/admission/approvals.yaml) admits an Approval only when ``spec.approvedBy`` is the
requesting user's own name, and RBAC (deploy/admission/roles.yaml) lets only the approver
role create them, never the plain ``edit`` role.
"""

from __future__ import annotations

import pydantic

from mlsteward.api import base


class ApprovalSpec(base.ApiModel):
    """Consent that one model version, by artifact digest, may take traffic on one Deployment."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.cel("self == oldSelf", "an Approval is immutable: create a new one instead"),
        )
    )

    deployment: str = pydantic.Field(pattern=base.DNS_LABEL_PATTERN, max_length=63)
    """Name of the mlsteward.io Deployment in the same namespace."""
    version: int = pydantic.Field(ge=1)
    """The approved model version."""
    digest: str = pydantic.Field(pattern=base.SHA256_PATTERN)
    """sha256 of the approved version's artifact: a different artifact under the same number is
    not approved."""
    approved_by: str = pydantic.Field(min_length=1, max_length=253)
    """The approver's user name; the admission policy requires it to be the creating user's."""
    reason: str = pydantic.Field(default="", max_length=1024)
    """Why it was approved, for the audit trail."""


class ApprovalStatus(base.StatusBase):
    """Approvals carry no state of their own; the Deployment's status says which one it used."""
