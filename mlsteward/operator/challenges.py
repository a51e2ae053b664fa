"""Relative gates: a new version against the champion, from both versions' recorded metrics.

Pure. Both versions' metrics come from the trainer's outcome (docs/contracts.md §3), computed
on each version's holdout. The holdout is a seeded function of the dataset and the split
settings, so two versions trained on the same dataset digest with the same ``spec.split``
were scored on the same rows ("the same frozen holdout"); ``sameHoldout`` records whether
that held. Otherwise the comparison is indicative only and the message says so.
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
    before: dict[str, float] = champion.get("metrics") or {}
    after: dict[str, float] = candidate.get("metrics") or {}
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
    same = bool(champion.get("datasetSha256")) and champion.get("datasetSha256") == candidate.get(
        "datasetSha256"
    )
    holdout = "same holdout" if same else "different datasets: holdouts differ, comparison indicative only"
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
