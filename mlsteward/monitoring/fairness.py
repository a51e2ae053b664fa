"""Fairness over a window: selection rate per group of a sensitive attribute, and the gap.

Pure: no I/O, no clock, no environment. The attribute travels in the batch's request
metadata and is never a model input. A row is *selected* when its predicted label is the
positive class. Groups are bounded per attribute (``MAX_GROUPS``; later groups are counted
as ``<other>``, a missing value as ``<missing>``), so memory does not grow with traffic.

The demographic parity difference is the largest minus the smallest selection rate among
groups with at least ``min_group_rows`` rows in the window (``None`` with fewer than two).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence

MAX_GROUPS = 32
OTHER_GROUP = "<other>"
MISSING_GROUP = "<missing>"


@dataclasses.dataclass
class GroupCounts:
    """Rows and selected rows per (attribute, group); add two to combine windows."""

    rows: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    selected: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    def add(self, other: GroupCounts) -> None:
        for target, source in ((self.rows, other.rows), (self.selected, other.selected)):
            for attribute, groups in source.items():
                mine = target.setdefault(attribute, {})
                for group, count in groups.items():
                    mine[group] = mine.get(group, 0) + count


def count(
    counts: GroupCounts,
    *,
    attribute: str,
    groups: Sequence[object],
    predicted: Sequence[str | None],
    positive: str,
    known_groups: set[str],
) -> None:
    """Add one batch: ``known_groups`` (shared across windows) caps the distinct groups."""
    tally = collections.Counter(zip(groups, predicted, strict=True))
    rows = counts.rows.setdefault(attribute, {})
    selected = counts.selected.setdefault(attribute, {})
    for (group, label), n in tally.items():
        name = _group_name(group, known_groups)
        rows[name] = rows.get(name, 0) + n
        if label == positive:
            selected[name] = selected.get(name, 0) + n


def _group_name(group: object, known: set[str]) -> str:
    if group is None:
        return MISSING_GROUP
    name = str(group)
    if name in known:
        return name
    if len(known) < MAX_GROUPS:
        known.add(name)
        return name
    return OTHER_GROUP


@dataclasses.dataclass(frozen=True)
class AttributeFairness:
    """Selection rates of one attribute's groups and the parity difference."""

    attribute: str
    rows: Mapping[str, int]
    selection_rate: Mapping[str, float]
    parity_difference: float | None
    limit: float | None

    @property
    def breached(self) -> bool:
        return (
            self.limit is not None
            and self.parity_difference is not None
            and self.parity_difference > self.limit
        )


def report(
    counts: GroupCounts, attribute: str, min_group_rows: int, limit: float | None
) -> AttributeFairness:
    rows = dict(sorted(counts.rows.get(attribute, {}).items()))
    selected = counts.selected.get(attribute, {})
    rates = {group: selected.get(group, 0) / n for group, n in rows.items() if n > 0}
    eligible = [rates[g] for g, n in rows.items() if n >= min_group_rows and g != MISSING_GROUP]
    gap = (max(eligible) - min(eligible)) if len(eligible) >= 2 else None
    return AttributeFairness(attribute, rows, rates, gap, limit)
