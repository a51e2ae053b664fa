"""The protected-attribute policy applied to model inputs, by column name.

The same check runs three times — on the spec's features, on the fitted pipeline's inputs and
on the ONNX graph's inputs — so a column can't slip in at any stage. Names are matched through
:mod:`mlsteward.api.policy` (US Regulation B preset with synonyms, plus the spec's additions).
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from mlsteward.api import model as api_model
from mlsteward.api import policy as api_policy
from mlsteward.training import errors


@dataclasses.dataclass(frozen=True)
class Violation:
    column: str
    why: str


def violations(inputs: Iterable[str], spec: api_model.ModelSpec) -> list[Violation]:
    """Inputs that are sensitive, or protected without an approved exception."""
    rules = spec.protected_attributes
    excepted = {api_policy.normalise(e.attribute) for e in rules.exceptions}
    sensitive = {api_policy.normalise(c) for c in spec.dataset.sensitive}
    found: list[Violation] = []
    for column in inputs:
        name = api_policy.normalise(column)
        if name in sensitive:
            found.append(
                Violation(column, "is listed in dataset.sensitive, and sensitive columns are never inputs")
            )
            continue
        protected = api_policy.protected_class(column, rules.preset, tuple(rules.additional))
        if protected is not None and name not in excepted:
            label = (
                "is listed in protectedAttributes.additional"
                if protected == "additional"
                else f"is a protected attribute ({protected}) under the {rules.preset} preset"
            )
            found.append(Violation(column, f"{label} and no approved exception allows it"))
    return found


def enforce(inputs: Iterable[str], spec: api_model.ModelSpec, stage: str) -> None:
    """Raise PolicyViolation naming every offending input found at ``stage``."""
    found = violations(inputs, spec)
    if found:
        details = "; ".join(f"{v.column!r} {v.why}" for v in found)
        raise errors.PolicyViolationError(f"{stage}: {details}")


def exceptions_used(inputs: Iterable[str], spec: api_model.ModelSpec) -> list[dict[str, str]]:
    """The approved exceptions that actually admit an input (recorded in the card and lineage)."""
    names = {api_policy.normalise(c) for c in inputs}
    return [
        {"attribute": e.attribute, "approvalRef": e.approval_ref, "justification": e.justification}
        for e in spec.protected_attributes.exceptions
        if api_policy.normalise(e.attribute) in names
    ]
