"""The safe model loop's pure parts: history chain, canary analysis, the rollout state
machine, retraining decisions (cron, cooldown, cap) and the relative challenger gates."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from mlsteward.api import deployment as api_deployment
from mlsteward.api import model as api_model
from mlsteward.operator import analysis, challenges, history, retraining, rollouts
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import serving
from mlsteward.operator.reconcilers import deployments
from mlsteward.serving.metrics import ServingMetrics

Json = dict[str, Any]
STABLE = serving.Target(1, "1" * 64)
CANDIDATE = serving.Target(2, "2" * 64)
T0 = "2026-11-23T10:00:00Z"


def _at(seconds: float) -> str:
    moment = history.parse_time(T0) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _page(stable_ok: int, canary_ok: int, canary_5xx: int = 0, agree: int = 0, disagree: int = 0) -> str:
    return "\n".join(
        [
            "# TYPE mlsteward_serving_requests_total counter",
            f'mlsteward_serving_requests_total{{code="200",model="m",version="1"}} {stable_ok}',
            f'mlsteward_serving_requests_total{{code="200",model="m",version="2"}} {canary_ok}',
            f'mlsteward_serving_requests_total{{code="500",model="m",version="2"}} {canary_5xx}',
            f'mlsteward_serving_shadow_rows_total{{outcome="agree"}} {agree}',
            f'mlsteward_serving_shadow_rows_total{{outcome="disagree"}} {disagree}',
            'mlsteward_serving_shadow_rows_created{outcome="agree"} 1.7e9',
        ]
    )


def test_history_records_chain_and_any_edit_or_removal_is_reported() -> None:
    chain = history.append([], version=1, digest="1" * 64, at=T0, action="started", reason="first")
    chain = history.append(
        chain, version=2, digest="2" * 64, at=_at(60), action="promoted", reason="ok", approved_by="bob"
    )
    chain = history.append(chain, version=1, digest="1" * 64, at=_at(120), action="killSwitch", reason="stop")
    assert set(chain[1]) == {
        "version",
        "digest",
        "at",
        "action",
        "reason",
        "approvedBy",
        "previousHash",
        "hash",
    }
    assert chain[1]["previousHash"] == chain[0]["hash"] and history.verify(chain) == []
    edited = [dict(r) for r in chain]
    edited[1]["approvedBy"] = "mallory"
    assert any("history[1]" in p and "edited" in p for p in history.verify(edited))
    assert any("history[1]" in p for p in history.verify([chain[0], chain[2]]))
    # A null approver is hashed the same whether the key is stored as null or pruned.
    pruned = {k: v for k, v in chain[0].items() if v is not None}
    assert history.record_hash(pruned) == chain[0]["hash"]


def test_which_version_served_at_a_time_is_the_last_record_at_or_before_it() -> None:
    chain = history.append([], version=1, digest="1" * 64, at=T0, action="started", reason="")
    chain = history.append(chain, version=2, digest="2" * 64, at=_at(60), action="promoted", reason="")
    assert history.served_at(chain, history.parse_time(_at(-1))) is None
    assert history.served_at(chain, history.parse_time(_at(30)))["version"] == 1  # type: ignore[index]
    assert history.served_at(chain, history.parse_time(_at(60)))["version"] == 2  # type: ignore[index]
    assert history.last_served_before(chain, 2)["version"] == 1  # type: ignore[index]


def test_counters_sum_the_pods_and_split_requests_and_errors_by_version() -> None:
    summed = analysis.counters([_page(10, 5, 1), _page(20, 5, 0)], stable=1, canary=2)
    assert summed["stableRequests"] == 30 and summed["canaryRequests"] == 11 and summed["canaryErrors"] == 1
    assert summed["pods"] == 2 and summed["shadowAgree"] == 0


def test_analysis_fails_on_an_error_rate_increase_and_pauses_on_too_little_traffic() -> None:
    limits = api_deployment.CanaryAnalysis(min_requests=20, max_error_rate_increase=0.05)
    before = analysis.counters([_page(0, 0)], stable=1, canary=2)
    good = analysis.judge(
        before,
        analysis.counters([_page(100, 50, 1)], stable=1, canary=2),
        limits,
        mode="split",
        step=1,
        now=T0,
    )
    assert good["verdict"] == "Passed" and good["canaryErrorRate"] == pytest.approx(1 / 51)
    bad = analysis.judge(
        before,
        analysis.counters([_page(100, 40, 10)], stable=1, canary=2),
        limits,
        mode="split",
        step=1,
        now=T0,
    )
    assert bad["verdict"] == "Failed" and "maxErrorRateIncrease" in bad["message"]
    thin = analysis.judge(
        before, analysis.counters([_page(100, 5)], stable=1, canary=2), limits, mode="split", step=1, now=T0
    )
    assert thin["verdict"] == "Inconclusive" and "minRequests=20" in thin["message"]


def test_a_shadow_step_fails_on_disagreement() -> None:
    limits = api_deployment.CanaryAnalysis(min_requests=10, max_disagreement=0.1)
    before = analysis.counters([_page(0, 0)], stable=1, canary=2)
    drifted = analysis.counters([_page(0, 0, agree=70, disagree=30)], stable=1, canary=2)
    verdict = analysis.judge(before, drifted, limits, mode="shadow", step=1, now=T0)
    assert verdict["verdict"] == "Failed" and verdict["disagreement"] == pytest.approx(0.3)


def test_p99_latency_is_compared_when_labelled_by_version() -> None:
    limits = api_deployment.CanaryAnalysis(min_requests=1, max_latency_p99_increase_percent=20)
    line = 'mlsteward_serving_request_duration_seconds_bucket{{le="{le}",model="m",version="{v}"}} {n}'
    page = "\n".join(
        [_page(100, 100)]
        + [line.format(le=le, v="1", n=n) for le, n in (("0.01", 100), ("+Inf", 100))]
        + [line.format(le=le, v="2", n=n) for le, n in (("0.01", 50), ("0.1", 100), ("+Inf", 100))]
    )
    verdict = analysis.judge(
        {}, analysis.counters([page], stable=1, canary=2), limits, mode="split", step=1, now=T0
    )
    assert verdict["verdict"] == "Failed" and verdict["canaryLatencyP99Seconds"] == 0.1


def test_p99_latency_is_compared_on_the_real_servers_exposition() -> None:
    # the serving pods' own metrics object and text format, not a hand-written page
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry)
    limits = api_deployment.CanaryAnalysis(min_requests=50, max_latency_p99_increase_percent=50)
    before = analysis.counters([generate_latest(registry).decode()], stable=1, canary=2)
    for _ in range(100):
        metrics.request("credit", "1", 200, 0.002)
        metrics.request("credit", "2", 200, 0.002)
    metrics.request("credit", "", 404, 0.0001)  # no version answered: counted for neither
    same = analysis.counters([generate_latest(registry).decode()], stable=1, canary=2)
    verdict = analysis.judge(before, same, limits, mode="split", step=1, now=T0)
    assert verdict["verdict"] == "Passed", verdict
    assert verdict["canaryLatencyP99Seconds"] == verdict["stableLatencyP99Seconds"] == 0.002
    assert "p99 canary 0.0020s vs stable 0.0020s" in verdict["message"]
    for _ in range(100):
        metrics.request("credit", "1", 200, 0.002)
        metrics.request("credit", "2", 200, 0.04)
    slower = analysis.counters([generate_latest(registry).decode()], stable=1, canary=2)
    verdict = analysis.judge(same, slower, limits, mode="split", step=2, now=T0)
    assert verdict["verdict"] == "Failed", verdict
    assert (verdict["canaryLatencyP99Seconds"], verdict["stableLatencyP99Seconds"]) == (0.05, 0.002)
    assert "exceeds maxLatencyP99IncreasePercent=50" in verdict["message"]


def _advance(rollout: Json | None, pages: list[str] | None, now: str, **kw: Any) -> rollouts.Outcome:
    canary = api_deployment.Canary.model_validate(
        kw.pop(
            "canary",
            {"trafficPercent": 10, "steps": [50, 100], "analysis": {"interval": "10s", "minRequests": 10}},
        )
    )
    return rollouts.advance(
        deployment="serve",
        rollout=rollout,
        stable=kw.pop("stable", STABLE),
        candidate=kw.pop("candidate", CANDIDATE),
        canary=canary,
        approval_required=kw.pop("approval_required", False),
        approvals=kw.pop("approvals", []),
        requested_by=kw.pop("requested_by", None),
        kill=kw.pop("kill", None),
        kill_target=kw.pop("kill_target", None),
        served=[],
        pages=pages,
        now=now,
    )


def test_a_good_canary_steps_10_50_100_and_is_promoted() -> None:
    out = _advance(None, [_page(0, 0)], T0)
    assert out.rollout is not None and out.rollout["phase"] == "Progressing" and out.share == 10
    assert out.canary == CANDIDATE and out.requeue_after == 10
    shares = [10]
    served = 0
    for n in range(1, 4):
        served += 100
        out = _advance(out.rollout, [_page(served, served)], _at(10 * n))
        shares.append(out.share)
    assert shares == [10, 50, 100, 0]
    assert out.rollout is not None and out.rollout["phase"] == "Promoted" and out.stable == CANDIDATE
    assert out.canary is None and [h["action"] for h in out.history] == ["promoted"]


def test_a_failing_canary_goes_back_to_the_stable_version_at_the_end_of_its_interval() -> None:
    out = _advance(None, [_page(0, 0)], T0)
    still = _advance(out.rollout, [_page(100, 10, 90)], _at(5))
    assert still.canary == CANDIDATE  # the interval is not over
    out = _advance(out.rollout, [_page(100, 10, 90)], _at(10))
    assert out.rollout is not None and out.rollout["phase"] == "RolledBack" and out.canary is None
    assert out.stable == STABLE and out.rejected == [2] and out.history[0]["action"] == "rolledBack"


def test_too_little_traffic_pauses_the_step_and_never_promotes() -> None:
    canary = {"trafficPercent": 100, "analysis": {"interval": "10s", "minRequests": 10}}
    out = _advance(None, [_page(0, 0)], T0, canary=canary)
    for n in range(1, 4):
        out = _advance(out.rollout, [_page(1, 1)], _at(10 * n), canary=canary)
        assert out.rollout is not None and out.rollout["phase"] == "Inconclusive" and out.stable == STABLE
    out = _advance(out.rollout, [_page(20, 20)], _at(40), canary=canary)
    assert out.rollout is not None and out.rollout["phase"] == "Promoted"


def test_an_unapproved_version_gets_no_traffic_and_a_self_approval_is_refused() -> None:
    out = _advance(None, [_page(0, 0)], T0, approval_required=True, requested_by="alice")
    assert out.rollout is not None and out.rollout["phase"] == "WaitingForApproval" and out.canary is None
    assert "mlsteward approve serve --version 2" in out.rollout["message"]

    def approval(by: str, digest: str = CANDIDATE.digest) -> Json:
        spec = {"deployment": "serve", "version": 2, "digest": digest, "approvedBy": by}
        return {"metadata": {"name": f"a-{by}", "creationTimestamp": T0}, "spec": spec}

    wrong = _advance(out.rollout, None, _at(1), approvals=[approval("bob", "9" * 64)])
    assert wrong.canary is None
    own = _advance(out.rollout, None, _at(1), approvals=[approval("alice")])
    assert own.canary is None and "refused" in own.rollout["message"]  # type: ignore[index]
    ok = _advance(out.rollout, [_page(0, 0)], _at(1), approvals=[approval("bob")])
    assert ok.canary == CANDIDATE and ok.rollout["approvedBy"] == "bob"  # type: ignore[index]


@pytest.mark.parametrize("phase_steps", [0, 1, 2])
def test_the_kill_switch_sends_all_traffic_to_the_stable_version_from_any_step(phase_steps: int) -> None:
    out = _advance(None, [_page(0, 0)], T0)
    for n in range(1, phase_steps + 1):
        out = _advance(out.rollout, [_page(100 * n, 100 * n)], _at(10 * n))
    killed = _advance(out.rollout, None, _at(10 * phase_steps + 1), kill=("t1", None))
    assert killed.canary is None and killed.stable == STABLE and killed.kill_switch == "t1"
    assert killed.rollout["phase"] == "KillSwitch" and killed.rejected == [2]  # type: ignore[index]


def test_after_a_promotion_the_kill_switch_restores_the_version_before() -> None:
    done = {"version": 2, "digest": CANDIDATE.digest, "stableVersion": 2, "phase": "Promoted"}
    killed = _advance(done, None, T0, stable=CANDIDATE, candidate=None, kill=("t2", None), kill_target=STABLE)
    assert killed.stable == STABLE and killed.rejected == [2] and killed.history[0]["action"] == "killSwitch"


def test_a_shadow_rollout_shadows_first_then_splits() -> None:
    canary = {
        "mode": "shadow",
        "trafficPercent": 50,
        "analysis": {"interval": "10s", "minRequests": 10, "maxDisagreement": 0.2},
    }
    assert rollouts.steps(api_deployment.Canary.model_validate(canary)) == [("shadow", 0), ("split", 50)]
    out = _advance(None, [_page(0, 0)], T0, canary=canary)
    assert out.mode == "shadow" and out.share == 0 and out.canary == CANDIDATE
    bad = _advance(out.rollout, [_page(100, 0, agree=50, disagree=50)], _at(10), canary=canary)
    assert bad.rollout["phase"] == "RolledBack" and bad.canary is None  # type: ignore[index]


def test_cron_schedules_fire_once_per_matching_minute() -> None:
    now = datetime.datetime(2026, 11, 23, 10, 7, 30, tzinfo=datetime.UTC)
    fired = retraining.last_fire("*/5 * * * *", now - datetime.timedelta(hours=1), now)
    assert fired == datetime.datetime(2026, 11, 23, 10, 5, tzinfo=datetime.UTC)
    assert retraining.last_fire("*/5 * * * *", fired, now) is None
    assert retraining.next_fire("0 3 * * *", now) == datetime.datetime(
        2026, 11, 24, 3, 0, tzinfo=datetime.UTC
    )
    with pytest.raises(retraining.CronError, match="schedule"):
        retraining.parse_cron("61 * * * *")


def test_cooldown_and_the_daily_cap_refuse_a_retrain_storm() -> None:
    budget = retraining.Budget(cooldown_seconds=60, max_per_day=2)
    now = datetime.datetime(2026, 11, 23, 10, 0, tzinfo=datetime.UTC)
    assert budget.refusal(None, 0, now) is None
    assert "cooldown" in (budget.refusal(now - datetime.timedelta(seconds=30), 1, now) or "")
    assert "daily cap" in (budget.refusal(now - datetime.timedelta(minutes=5), 2, now) or "")
    assert budget.refusal(now - datetime.timedelta(days=1), 2, now) is None


def test_a_challenger_worse_than_the_champion_beyond_the_margin_is_rejected() -> None:
    gates = api_model.ChallengerGates(max_metric_decrease=0.01, max_fairness_regression=0.02)
    champion = {
        "version": 1,
        "datasetSha256": "d" * 64,
        "metrics": {"roc_auc": 0.80, "fairness.sex.dpd": 0.05},
    }
    better = {
        "version": 2,
        "datasetSha256": "d" * 64,
        "metrics": {"roc_auc": 0.805, "fairness.sex.dpd": 0.06},
    }
    worse = {"version": 3, "datasetSha256": "e" * 64, "metrics": {"roc_auc": 0.78, "fairness.sex.dpd": 0.10}}
    ok = challenges.compare(champion, better, gates)
    assert ok["passed"] and ok["sameHoldout"]
    rejected = challenges.compare(champion, worse, gates)
    assert not rejected["passed"] and not rejected["sameHoldout"]
    assert "roc_auc fell" in rejected["message"] and "fairness.sex.dpd rose" in rejected["message"]


def test_the_challenge_uses_the_champion_scored_on_the_challengers_holdout_when_present() -> None:
    gates = api_model.ChallengerGates(max_metric_decrease=0.01, max_fairness_regression=0.02)
    dpd = "fairness.sex.demographic_parity_difference"
    # recorded on the old population; the new one is harder for both models
    champion = {
        "version": 1,
        "artifact": {"digest": "a" * 64},
        "datasetSha256": "d" * 64,
        "metrics": {"roc_auc": 0.9},
    }
    drifted: Json = {"version": 2, "datasetSha256": "e" * 64, "metrics": {"roc_auc": 0.8, dpd: 0.06}}
    assert not challenges.compare(champion, drifted, gates)["passed"]  # indicative figures only
    scored = {
        "digest": "a" * 64,
        "sameHoldout": True,
        "reason": None,
        "metrics": {"roc_auc": 0.79, dpd: 0.05},
    }
    same = challenges.compare(champion, {**drifted, "championComparison": scored}, gates)
    assert same["passed"] and same["sameHoldout"], same
    assert "roc_auc 0.7900 -> 0.8000" in same["message"] and f"{dpd} 0.0500 -> 0.0600" in same["message"]
    unfair = {**drifted, "metrics": {"roc_auc": 0.8, dpd: 0.09}, "championComparison": scored}
    rejected = challenges.compare(champion, unfair, gates)
    assert (
        not rejected["passed"] and rejected["sameHoldout"] and f"{dpd} rose by 0.0400" in rejected["message"]
    )
    # figures for another champion (it changed while the Job ran): the recorded metrics again
    stale = {**drifted, "championComparison": {**scored, "digest": "c" * 64}}
    assert challenges.compare(champion, stale, gates) == challenges.compare(champion, drifted, gates)
    # a schema change: not comparable, said so, recorded metrics compared
    reason = "not comparable: the champion's features ['a', 'b'] differ from this version's ['a']"
    changed = {
        **drifted,
        "championComparison": {**scored, "sameHoldout": False, "metrics": {}, "reason": reason},
    }
    fallback = challenges.compare(champion, changed, gates)
    assert (
        not fallback["sameHoldout"]
        and reason in fallback["message"]
        and "indicative only" in fallback["message"]
    )


def _deployment_plan(
    spec: Json,
    status: Json,
    annotations: Json | None = None,
    pages: list[str] | None = None,
    monitor_requires_approval: bool = False,
) -> Any:
    def version(number: int) -> Json:
        return {
            "version": number,
            "phase": "Succeeded",
            "artifact": {"digest": str(number) * 64, "uri": "file:///x"},
            "gates": {"quality": "passed", "fairness": "passed", "promotable": True},
        }

    model = {
        "metadata": {"name": "m", "namespace": "risk"},
        "spec": {
            "task": "classification",
            "dataset": {"uri": "/d.csv", "target": "label", "features": ["a"]},
            "estimator": {"className": "LogisticRegression"},
        },
        "status": {"versions": [version(1), version(2)], "aliases": {"champion": 1, "challenger": 2}},
    }
    body = {
        "apiVersion": "mlsteward.io/v1alpha1",
        "kind": "Deployment",
        "metadata": {
            "name": "serve",
            "namespace": "risk",
            "uid": "u",
            "generation": 1,
            "annotations": annotations or {},
        },
        "spec": spec,
        "status": status,
    }
    return deployments.plan(
        body,
        api_deployment.DeploymentSpec.model_validate(spec),
        model=model,
        observed={"Deployment": None, "HorizontalPodAutoscaler": None},
        settings=settings_module.Settings(),
        now=T0,
        pages=pages,
        monitor_requires_approval=monitor_requires_approval,
    )


def _routing_of(result: Any) -> Json:
    config_map = next(c for c in result.apply if c["kind"] == "ConfigMap")
    routing: Json = json.loads(config_map["data"]["routing.json"])
    return routing


def test_the_deployment_plan_routes_the_step_records_history_and_honours_the_kill_switch_first() -> None:
    spec = {"modelRef": {"name": "m"}, "canary": {"trafficPercent": 10, "steps": [100]}}
    first = _deployment_plan(spec, {}, pages=[_page(0, 0)])
    assert _routing_of(first)["challenger"]["share"] == 10
    assert first.status["rollout"]["phase"] == "Progressing" and first.status["canaryTrafficPercent"] == 10
    assert [r["action"] for r in first.status["history"]] == ["started"]
    killed = _deployment_plan(spec, first.status, annotations={"mlsteward.io/rollback": "now"})
    assert _routing_of(killed)["challenger"] is None and killed.status["killSwitch"] == "now"
    assert killed.status["rollout"]["phase"] == "KillSwitch" and killed.status["rejectedVersions"] == [2]
    assert [r["action"] for r in killed.status["history"]] == ["started", "killSwitch"]
    assert history.verify(killed.status["history"]) == []
    again = _deployment_plan(spec, killed.status, annotations={"mlsteward.io/rollback": "now"})
    assert _routing_of(again)["challenger"] is None and len(again.status["history"]) == 2


def test_an_altered_history_is_reported_when_the_next_record_is_appended() -> None:
    spec = {"modelRef": {"name": "m"}, "canary": {"trafficPercent": 10, "steps": [100]}}
    first = _deployment_plan(spec, {}, pages=[_page(0, 0)])
    tampered = {**first.status, "history": [{**first.status["history"][0], "reason": "edited"}]}
    killed = _deployment_plan(spec, tampered, annotations={"mlsteward.io/rollback": "now"})
    warning = next(e for e in killed.events if e.reason == "HistoryBroken")
    assert warning.type == "Warning" and "history[0]" in warning.message


def test_a_restarted_pod_makes_the_step_inconclusive_once_and_is_measured_afresh() -> None:
    canary = {"trafficPercent": 100, "analysis": {"interval": "10s", "minRequests": 10}}
    out = _advance(None, [_page(500, 500)], T0, canary=canary)
    out = _advance(out.rollout, [_page(5, 5)], _at(10), canary=canary)  # counters went back
    assert out.rollout is not None and out.rollout["phase"] == "Inconclusive"
    assert "restarted" in out.rollout["lastAnalysis"]["message"]
    out = _advance(out.rollout, [_page(100, 100)], _at(20), canary=canary)
    assert out.rollout is not None and out.rollout["phase"] == "Promoted"


def test_the_kill_switch_restores_a_named_version_after_a_promotion() -> None:
    spec = {"modelRef": {"name": "m"}, "canary": {"trafficPercent": 10, "steps": [100]}}
    served = history.append([], version=2, digest="2" * 64, at=T0, action="promoted", reason="")
    promoted = {"version": 2, "digest": "2" * 64, "stableVersion": 2, "phase": "Promoted"}
    status = {"activeVersion": 2, "rollout": promoted, "history": served}
    annotations = {"mlsteward.io/rollback": "t", "mlsteward.io/rollback-version": "1"}
    killed = _deployment_plan(spec, status, annotations=annotations)
    assert _routing_of(killed)["champion"]["version"] == "1" and killed.status["activeVersion"] == 1
    assert (
        killed.status["rollout"]["stableVersion"] == 1
        and killed.status["history"][-1]["action"] == "killSwitch"
    )


def test_a_monitor_that_requires_approval_holds_the_rollout_like_the_deployment_would() -> None:
    spec = {"modelRef": {"name": "m"}, "canary": {"trafficPercent": 10}}
    held = _deployment_plan(spec, {}, pages=[_page(0, 0)], monitor_requires_approval=True)
    assert held.status["rollout"]["phase"] == "WaitingForApproval" and _routing_of(held)["challenger"] is None
