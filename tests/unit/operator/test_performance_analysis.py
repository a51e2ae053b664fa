"""The canary analysis compares labelled performance per version from the monitors' /summary."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mlsteward.api import deployment as api_deployment
from mlsteward.operator import analysis, rollouts
from mlsteward.operator.builders import serving

STABLE = serving.Target(1, "1" * 64)
CANDIDATE = serving.Target(2, "2" * 64)
T0 = "2026-11-23T10:00:00Z"
T1 = "2026-11-23T10:00:10Z"
PAGE_BEFORE = 'mlsteward_serving_requests_total{code="200",model="m",version="1"} 0'
PAGE_AFTER = "\n".join(
    [
        'mlsteward_serving_requests_total{code="200",model="m",version="1"} 900',
        'mlsteward_serving_requests_total{code="200",model="m",version="2"} 100',
    ]
)


def _summary(**by_version: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "mlsteward.io/monitor-summary/v1", "performanceByVersion": by_version}


def _figures(labeled: int, accuracy: float | None = None, **other: float) -> dict[str, Any]:
    return {"labeled": labeled, "accuracy": accuracy, "rocAuc": other.get("rocAuc"), **other}


def _judge(summaries: list[dict[str, Any]] | None, **limits: Any) -> dict[str, Any]:
    before = analysis.counters([PAGE_BEFORE], stable=1, canary=2)
    after = analysis.counters([PAGE_AFTER], stable=1, canary=2)
    return analysis.judge(
        before,
        after,
        api_deployment.CanaryAnalysis.model_validate({"minRequests": 10, **limits}),
        mode="split",
        step=1,
        now=T0,
        stable=1,
        canary=2,
        summaries=summaries,
    )


def test_the_pods_figures_merge_like_one_computation_over_all_their_rows() -> None:
    rng = np.random.default_rng(3)
    errors = [rng.normal(0, 1, 40), rng.normal(0.5, 2, 160)]
    right = [rng.random(40) < 0.9, rng.random(160) < 0.7]
    pods = [
        _summary(
            **{
                "2": {
                    "labeled": len(e),
                    "accuracy": float(np.mean(r)),
                    "rmse": float(np.sqrt(np.mean(e**2))),
                    "mae": float(np.mean(np.abs(e))),
                }
            }
        )
        for e, r in zip(errors, right, strict=True)
    ]

    merged = analysis.performance(pods, 2)

    every_error, every_right = np.concatenate(errors), np.concatenate(right)
    assert merged["labeled"] == 200
    assert merged["accuracy"] == pytest.approx(float(np.mean(every_right)))
    assert merged["rmse"] == pytest.approx(float(np.sqrt(np.mean(every_error**2))))
    assert merged["mae"] == pytest.approx(float(np.mean(np.abs(every_error))))
    assert merged["rocAuc"] is None
    assert analysis.performance(pods, 1) == {"labeled": 0.0, "accuracy": None, "rocAuc": None} | {
        "rmse": None,
        "mae": None,
    }


def test_a_canary_whose_labelled_accuracy_falls_beyond_the_limit_fails_and_the_figures_are_kept() -> None:
    pods = [
        _summary(**{"1": _figures(400, 0.90, rocAuc=0.85), "2": _figures(60, 0.80, rocAuc=0.84)}),
        _summary(**{"1": _figures(400, 0.92, rocAuc=0.87), "2": _figures(40, 0.85, rocAuc=0.86)}),
    ]

    verdict = _judge(pods, maxPerformanceDecrease=0.05)

    assert verdict["verdict"] == "Failed"
    assert "performance: accuracy falls by 0.0900" in verdict["message"]
    assert "maxPerformanceDecrease=0.05" in verdict["message"]
    assert "rocAuc falls" not in verdict["message"]  # 0.86 - 0.848 is within the limit
    assert verdict["canaryLabels"] == 100 and verdict["stableLabels"] == 800
    assert verdict["canaryAccuracy"] == pytest.approx(0.82) and verdict["stableAccuracy"] == pytest.approx(
        0.91
    )
    recorded = api_deployment.AnalysisResult.model_validate(verdict)  # every figure is a status field
    assert recorded.canary_roc_auc == pytest.approx(0.848)


def test_a_canary_as_good_as_the_stable_version_passes_with_its_figures_in_the_message() -> None:
    pods = [_summary(**{"1": _figures(500, 0.90), "2": _figures(80, 0.89)})]

    verdict = _judge(pods)

    assert verdict["verdict"] == "Passed"
    assert (
        "accuracy canary 0.8900 vs stable 0.9000 over 80 canary and 500 stable labelled rows"
        in (verdict["message"])
    )


def test_a_regression_canary_fails_when_its_rmse_rises_beyond_the_limit() -> None:
    pods = [_summary(**{"1": _figures(100, rmse=1.0, mae=0.8), "2": _figures(100, rmse=1.5, mae=0.81)})]

    verdict = _judge(pods, maxPerformanceDecrease=0.1)

    assert verdict["verdict"] == "Failed" and "performance: rmse rises by 0.5000" in verdict["message"]
    assert "mae rises" not in verdict["message"]
    assert math.isclose(verdict["canaryRmse"], 1.5) and math.isclose(verdict["stableMae"], 0.8)


def test_too_few_labels_skip_the_performance_check_and_never_make_a_step_inconclusive() -> None:
    pods = [_summary(**{"1": _figures(500, 0.95), "2": _figures(49, 0.10)})]

    thin = _judge(pods, minLabels=50)
    no_labels = _judge([_summary()])
    no_monitor = _judge(None)

    assert thin["verdict"] == "Passed"
    assert (
        "performance not compared (49 canary and 500 stable labelled rows; minLabels=50)" in thin["message"]
    )
    assert no_labels["verdict"] == "Passed" and "performance not compared (0 canary" in no_labels["message"]
    assert no_monitor["verdict"] == "Passed" and "performance" not in no_monitor["message"]


def test_the_rollout_rolls_a_canary_with_worse_labelled_accuracy_back_and_names_performance() -> None:
    canary = api_deployment.Canary.model_validate(
        {"trafficPercent": 10, "steps": [100], "analysis": {"interval": "10s", "minRequests": 10}}
    )
    common: dict[str, Any] = {
        "deployment": "serve",
        "stable": STABLE,
        "candidate": CANDIDATE,
        "canary": canary,
        "approval_required": False,
        "approvals": [],
        "requested_by": None,
        "kill": None,
        "kill_target": None,
        "served": [],
    }
    started = rollouts.advance(rollout=None, pages=[PAGE_BEFORE], now=T0, **common)
    pods = [_summary(**{"1": _figures(300, 0.9), "2": _figures(100, 0.7)})]

    out = rollouts.advance(rollout=started.rollout, pages=[PAGE_AFTER], now=T1, summaries=pods, **common)

    assert out.rollout is not None and out.rollout["phase"] == "RolledBack" and out.canary is None
    assert out.rollout["lastAnalysis"]["canaryAccuracy"] == pytest.approx(0.7)
    assert "performance: accuracy falls" in out.history[0]["reason"]
