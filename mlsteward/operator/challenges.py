"""Relative gates: a new version against the champion, on the same holdout where possible.

Pure. Preferred figures: the new version's training Job scored the champion's artifact on the
new version's own holdout (``championComparison``, docs/contracts.md §3), so both models'
metrics and fairness gaps come from the same rows. Without those (no comparison for this
champion's digest, or the champion could not be compared: the message says why), both
versions' recorded metrics are compared: the holdout is a seeded function of the dataset and
the split settings, so with the same dataset digest they are the same rows; otherwise the
comparison is indicative only and the message says so. ``sameHoldout`` records which held.
"""

from __future__ import annotations

from typing import Any

from mlsteward.api import model as api_model

HIGHER_IS_BETTER = frozenset(
    {"accuracy", "balanced_accuracy", "roc_auc", "f1", "precision", "recall", "average_precision", "r2"}
)
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "log_loss", "brier"})
FAIRNESS_PREFIX = "fairness."


def compare(
    champion: dict[str, Any], candidate: dict[str, Any], gates: api_model.ChallengerGates
) -> dict[str, Any]:
    """The ``challenge`` record of ``candidate`` (a version record) against ``champion``."""
    after: dict[str, float] = candidate.get("metrics") or {}
    scored = candidate.get("championComparison") or {}
    champion_digest = (champion.get("artifact") or {}).get("digest")
    ours = bool(champion_digest) and scored.get("digest") == champion_digest
    if ours and scored.get("sameHoldout") and scored.get("metrics"):
        before: dict[str, float] = scored["metrics"]
        same = True
        holdout = "the champion scored on this version's holdout"
    else:
        before = champion.get("metrics") or {}
        same = bool(champion.get("datasetSha256")) and champion.get("datasetSha256") == candidate.get(
            "datasetSha256"
        )
        holdout = (
            "same dataset, same holdout"
            if same
            else "different datasets: holdouts differ, comparison indicative only"
        )
        if ours and scored.get("reason"):
            holdout += f"; {scored['reason']}"
    failures: list[str] = []
    compared: list[str] = []
    for name in sorted(set(before) & set(after)):
        old, new = float(before[name]), float(after[name])
        if name.startswith(FAIRNESS_PREFIX):
            compared.append(f"{name} {old:.4f} -> {new:.4f}")
            if new - old > gates.max_fairness_regression:
                failures.append(
                    f"{name} rose by {new - old:.4f} "
                    f"(> maxFairnessRegression {gates.max_fairness_regression})"
                )
        elif name in HIGHER_IS_BETTER:
            compared.append(f"{name} {old:.4f} -> {new:.4f}")
            if old - new > gates.max_metric_decrease:
                failures.append(
                    f"{name} fell by {old - new:.4f} (> maxMetricDecrease {gates.max_metric_decrease})"
                )
        elif name in LOWER_IS_BETTER:
            compared.append(f"{name} {old:.4f} -> {new:.4f}")
            if old > 0 and (new - old) / old > gates.max_metric_decrease:
                failures.append(
                    f"{name} rose by {(new - old) / old:.2%} "
                    f"(> maxMetricDecrease {gates.max_metric_decrease})"
                )
    if failures:
        message = f"rejected challenger against version {champion['version']} ({holdout}): " + "; ".join(
            failures
        )
    elif compared:
        message = f"no worse than version {champion['version']} ({holdout}): " + ", ".join(compared)
    else:
        message = f"no metric in common with version {champion['version']} to compare"
    return {
        "champion": int(champion["version"]),
        "passed": not failures,
        "sameHoldout": same,
        "message": message[:4096],
    }
