"""Turning a window's summaries into verdicts: per column, for the model, over time.

Pure: no I/O, no clock, no environment. Decisions are by effect size: a column *drifts* in
a window when the score of its configured test is at or above its threshold, and only when
the window holds at least ``min_samples`` rows; below that the state is
``insufficient_data``, which is neither a pass nor a breach and leaves the streak of
consecutive breaches as it was. A column (or the model) is *drifting* once it has breached
in ``consecutive_windows`` evaluated windows in a row.

The model breaches when at least ``drifting_share`` of its features drift, or when a
prediction column drifts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

from mlsteward.monitoring import profiles, statistics, summaries

State = Literal["insufficient_data", "ok", "drift"]
STATES: tuple[State, ...] = ("insufficient_data", "ok", "drift")


@dataclasses.dataclass(frozen=True)
class Rules:
    """Tests, thresholds and persistence; defaults follow Evidently's for large references."""

    numeric_test: statistics.Test = "wasserstein"
    numeric_threshold: float = 0.1
    categorical_test: statistics.Test = "jensen_shannon"
    categorical_threshold: float = 0.1
    overrides: Mapping[str, tuple[statistics.Test | None, float | None]] = dataclasses.field(
        default_factory=dict
    )
    drifting_share: float = 0.5
    consecutive_windows: int = 2
    min_samples: int = 1000

    def for_column(self, column: summaries.Column) -> tuple[statistics.Test, float]:
        numeric = column.kind == "numeric"
        test = self.numeric_test if numeric else self.categorical_test
        threshold = self.numeric_threshold if numeric else self.categorical_threshold
        override_test, override_threshold = self.overrides.get(column.key, (None, None))
        test = override_test or test
        allowed = statistics.NUMERIC_TESTS if numeric else statistics.CATEGORICAL_TESTS
        if test not in allowed:
            raise ValueError(f"test {test!r} does not apply to {column.kind} column {column.key!r}")
        return test, override_threshold if override_threshold is not None else threshold


@dataclasses.dataclass(frozen=True)
class ColumnVerdict:
    """One column in one window."""

    column: summaries.Column
    test: statistics.Test
    threshold: float
    scores: Mapping[statistics.Test, statistics.Score]
    state: State
    consecutive: int
    drifting: bool

    @property
    def score(self) -> float:
        return self.scores[self.test].value

    @property
    def severity(self) -> float:
        """Score over threshold: what "worst first" sorts by."""
        return self.score / self.threshold


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The verdicts of one closed window, worst column first."""

    number: int
    started: float
    ended: float
    rows: int
    state: State
    consecutive: int
    drifting: bool
    drifting_features: int
    columns: tuple[ColumnVerdict, ...]
    current: summaries.Summary


def score_column(
    column: summaries.Column, current: summaries.Summary, tests: tuple[statistics.Test, ...] | None = None
) -> dict[statistics.Test, statistics.Score]:
    """Every applicable test (or ``tests``) for one column of ``current`` against the reference."""
    reference = column.reference
    counts = current.column(column)
    if isinstance(reference, profiles.NumericReference):
        sums = current.column_sums(column)
        return {
            test: statistics.run(
                test,
                reference.counts,
                counts,
                edges=reference.edges,
                current_sums=sums,
                reference_std=reference.std,
                reference_mean=reference.mean,
            )
            for test in tests or statistics.NUMERIC_TESTS
        }
    return {
        test: statistics.run(test, reference.counts, counts) for test in tests or statistics.CATEGORICAL_TESTS
    }


class Scorer:
    """Every applicable test for every column of a layout, all columns at once (the statistics
    module's panels): what ``score_column`` gives column by column, in a fraction of the time."""

    def __init__(self, layout: summaries.Layout) -> None:
        self.layout = layout
        numeric = [(c, c.reference) for c in layout.numeric]
        categorical = [(c, c.reference) for c in layout.categorical]
        self._numeric = statistics.NumericPanel(
            [c.offset for c, _ in numeric],
            [r for _, r in numeric if isinstance(r, profiles.NumericReference)],
        )
        self._categorical = statistics.CategoricalPanel(
            [c.offset for c, _ in categorical], [r.counts for _, r in categorical]
        )

    def score(self, current: summaries.Summary) -> dict[str, dict[statistics.Test, statistics.Score]]:
        """Column key -> test -> score."""
        scores: dict[str, dict[statistics.Test, statistics.Score]] = {}
        if self.layout.numeric:
            for column, column_scores in zip(
                self.layout.numeric, self._numeric.scores(current.counts, current.sums), strict=True
            ):
                scores[column.key] = column_scores
        if self.layout.categorical:
            for column, column_scores in zip(
                self.layout.categorical, self._categorical.scores(current.counts), strict=True
            ):
                scores[column.key] = column_scores
        return scores


def evaluate(
    layout: summaries.Layout,
    current: summaries.Summary,
    rules: Rules,
    previous: Evaluation | None,
    *,
    number: int,
    started: float,
    ended: float,
    scorer: Scorer | None = None,
) -> Evaluation:
    """The verdicts of one window; pass the layout's ``scorer`` when evaluating many windows."""
    enough = current.rows >= rules.min_samples
    before = {v.column.key: v.consecutive for v in previous.columns} if previous else {}
    all_scores = (scorer or Scorer(layout)).score(current)
    verdicts: list[ColumnVerdict] = []
    for column in layout.columns:
        test, threshold = rules.for_column(column)
        scores = all_scores[column.key]
        if not enough:
            state: State = "insufficient_data"
            streak = before.get(column.key, 0)
        elif scores[test].value >= threshold:
            state, streak = "drift", before.get(column.key, 0) + 1
        else:
            state, streak = "ok", 0
        verdicts.append(
            ColumnVerdict(column, test, threshold, scores, state, streak, streak >= rules.consecutive_windows)
        )
    features = [v for v in verdicts if v.column.role == "feature"]
    drifting_features = sum(v.state == "drift" for v in features)
    prediction_drift = any(v.state == "drift" for v in verdicts if v.column.role == "prediction")
    previous_streak = previous.consecutive if previous else 0
    if not enough:
        model_state: State = "insufficient_data"
        streak = previous_streak
    elif prediction_drift or (features and drifting_features / len(features) >= rules.drifting_share):
        model_state, streak = "drift", previous_streak + 1
    else:
        model_state, streak = "ok", 0
    ordered = sorted(verdicts, key=lambda v: (v.state != "drift", -v.severity, v.column.key))
    return Evaluation(
        number=number,
        started=started,
        ended=ended,
        rows=current.rows,
        state=model_state,
        consecutive=streak,
        drifting=streak >= rules.consecutive_windows,
        drifting_features=drifting_features,
        columns=tuple(ordered),
        current=current,
    )
