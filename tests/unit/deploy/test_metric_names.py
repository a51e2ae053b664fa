"""Every metric the alert rules and the Grafana dashboard use is one the code really exports.

The names are read from the exposition the server's and the monitor's own code produces: the
server's metrics on a fresh registry, the monitor's collector over a monitor fed with shifted
traffic, delayed labels and a sensitive attribute, so that its conditional families (quality,
fairness, drift verdicts) appear too, the decision log's collector, and a real scrape of the
operator's metrics server.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
from typing import Any

import aiohttp
import numpy as np
import prometheus_client
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mlsteward.audit import locations
from mlsteward.monitoring import batches, decisions, metrics, monitors, profiles, profiling, verdicts, windows
from mlsteward.operator import metrics as operator_metrics
from mlsteward.serving import metrics as serving_metrics

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
MONITORING = REPO_ROOT / "deploy" / "monitoring"
_NAME = re.compile(r"\bmlsteward_[a-z0-9_]+")
_SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def _exposed(registry: prometheus_client.CollectorRegistry) -> set[str]:
    return _names(prometheus_client.generate_latest(registry).decode())


def _names(text: str) -> set[str]:
    """Family and sample names as Prometheus stores them (counters with _total)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name + "_total" if kind == "counter" and not name.endswith("_total") else name)
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
    return names


def _fed_monitor() -> monitors.Monitor:
    rng = np.random.default_rng(7)
    n = 4_000
    reference_columns = {
        "income": rng.normal(50.0, 10.0, n),
        "purpose": rng.choice(["car", "home"], n).tolist(),
    }
    score = rng.uniform(0.0, 1.0, n)
    document = profiling.profile(
        reference_columns, prediction_label=["1" if s > 0.5 else "0" for s in score], prediction_score=score
    )
    schema = {
        "task": "classification",
        "target": "default",
        "features": [{"name": "income", "kind": "numeric"}, {"name": "purpose", "kind": "categorical"}],
        "classes": ["0", "1"],
        "positive_class": "1",
        "sensitive": ["sex"],
    }
    monitor = monitors.Monitor(
        profiles.parse_reference(document, schema),
        verdicts.Rules(consecutive_windows=1, min_samples=500),
        windows.WindowSpec("tumbling", 1_000, None, 500),
        monitors.Options(fairness_limits={"sex": 0.1}, min_group_rows=10),
        now=0.0,
        digest="d" * 64,
    )
    for start in range(0, 2_000, 500):
        rows = 500
        scores = rng.uniform(0.0, 1.0, rows)
        predicted = ["1" if s > 0.5 else "0" for s in scores]
        ids = [f"r{start + i}" for i in range(rows)]
        body: dict[str, Any] = {
            "model_version": "3",
            "route": "champion",
            "time": 1.0,
            "request_ids": ids,
            "features": {
                "income": (rng.normal(70.0, 10.0, rows)).tolist(),
                "purpose": rng.choice(["car", "home", "boat"], rows).tolist(),
            },
            "prediction": {"label": predicted, "score": scores.tolist()},
            "metadata": {"sex": rng.choice(["F", "M"], rows).tolist()},
        }
        monitor.ingest(
            batches.parse(
                body, monitor.layout, max_rows=10_000, max_missing_share=0.5, metadata_keys=["sex"]
            ),
            float(start),
        )
        labels = {"request_ids": ids, "labels": rng.choice(["0", "1"], rows).tolist()}
        monitor.ingest_labels(batches.parse_labels(labels, "classification", 10_000), float(start))
    monitor.reject("wrong_type", 3)
    monitor.drop("busy")
    return monitor


def _scraped_operator() -> str:
    """The operator's metrics server, started in this process and scraped over HTTP, after a
    failed training run, a rollback, a promotion and a reconcile were counted."""
    counted = operator_metrics.OperatorMetrics()
    model = {
        "kind": "Model",
        "metadata": {"namespace": "credit", "name": "risk"},
        "status": {"versions": [{"version": 1, "phase": "Training"}]},
    }
    counted.count_status(model, {"versions": [{"version": 1, "phase": "Failed", "reason": "GateFailed"}]})
    deployment = {"kind": "Deployment", "metadata": {"namespace": "credit", "name": "risk"}, "status": {}}
    counted.count_status(deployment, {"rollout": {"version": 2, "phase": "RolledBack"}})
    counted.count_status(deployment, {"rollout": {"version": 3, "phase": "Promoted"}})
    counted.observe_reconcile("Model", 0.01)

    async def scrape() -> str:
        runner = await operator_metrics.serve(counted, "127.0.0.1", 0)
        assert runner is not None, "the operator's metrics server did not start"
        try:
            (port,) = operator_metrics.bound_ports(runner)
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/metrics") as response,
            ):
                return await response.text()
        finally:
            await runner.cleanup()

    return asyncio.run(scrape())


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    server = prometheus_client.CollectorRegistry()
    serving_metrics.ServingMetrics(server)
    monitor = prometheus_client.CollectorRegistry(auto_describe=False)
    monitor.register(metrics.MonitorCollector(_fed_monitor()))
    # The monitor's decision log (not started: its counters exist from construction).
    log = decisions.DecisionLog(
        locations.open_location(str(tmp_path_factory.mktemp("decisions"))),
        decisions.LogSettings(namespace="credit", deployment="credit-risk", chain="c0"),
        clock=lambda: 1.0,
    )
    monitor.register(decisions.DecisionLogCollector(log))
    return _exposed(server) | _exposed(monitor) | _names(_scraped_operator())


def _rule_names() -> set[str]:
    document = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    return {
        name
        for group in document["groups"]
        for rule in group["rules"]
        for name in _NAME.findall(rule["expr"])
    }


def _dashboard_names() -> set[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    expressions += [str(v.get("query", "")) for v in dashboard["templating"]["list"]]
    return {name for expression in expressions for name in _NAME.findall(expression)}


def _base(name: str, exported: set[str]) -> str:
    if name in exported:
        return name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in exported:
            return name.removesuffix(suffix)
    return name


def test_the_fed_monitor_exposes_its_conditional_families(exported: set[str]) -> None:
    assert {
        "mlsteward_monitor_drifting",
        "mlsteward_monitor_accuracy",
        "mlsteward_monitor_roc_auc",
        "mlsteward_monitor_selection_rate",
        "mlsteward_monitor_demographic_parity_difference",
        "mlsteward_serving_request_duration_seconds",
        "mlsteward_audit_decisions_dropped_total",
        "mlsteward_operator_training_runs_total",
        "mlsteward_rollout_rollbacks_total",
        "mlsteward_rollout_promotions_total",
        "mlsteward_operator_reconcile_duration_seconds_bucket",
        "mlsteward_operator_queue_depth",
    } <= exported


def test_every_metric_in_the_alert_rules_is_exported(exported: set[str]) -> None:
    names = _rule_names()

    assert len(names) >= 6
    assert sorted(n for n in names if _base(n, exported) not in exported) == []


def test_every_metric_on_the_dashboard_is_exported(exported: set[str]) -> None:
    names = _dashboard_names()

    assert len(names) >= 15
    assert sorted(n for n in names if _base(n, exported) not in exported) == []
