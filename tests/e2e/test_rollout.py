"""The safe model loop on the real stack: drift -> retrain -> challenger -> canary -> promote,
a bad version rolled back by the analysis, and the kill switch.

Everything runs for real: the Monitor's sidecar finds the drift and asks for a retrain, the
agent runs the training Jobs on data that really changed behind the dataset URI, the serving
pod answers live traffic (a background thread) while the operator reads its /metrics for each
canary step. Waits are bounded; the canary's analysis interval is a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import yaml

from mlsteward.dev import stack, traffic
from mlsteward.operator import history
from mlsteward.training import datasets as generator

NAMESPACE = "e2e-rollout"
NAME = "credit-loop"
DATASET = "credit-loop.parquet"
FEATURES = list(generator.EXAMPLE_FEATURES)
CATEGORICAL = list(generator.EXAMPLE_CATEGORICAL)
NUMERIC = list(generator.NUMERIC)
DEPLOYMENTS = "deployments.mlsteward.io"
Json = dict[str, Any]

SPLIT: Json = {
    "trafficPercent": 50,
    "steps": [100],
    # p99 is compared per version where the server labels it; two cores under a training Job
    # make latency noisy, so only a gross regression would fail here.
    "analysis": {"interval": "3s", "minRequests": 10, "maxErrorRateIncrease": 0.02,
                 "maxLatencyP99IncreasePercent": 1000},
}  # fmt: skip
SHADOW: Json = {
    **SPLIT,
    "mode": "shadow",
    "analysis": {**SPLIT["analysis"], "minRequests": 50, "maxDisagreement": 0.3},
}


def _manifests(uri: str) -> list[Json]:
    api = "mlsteward.io/v1alpha1"
    model = {
        "apiVersion": api,
        "kind": "Model",
        "metadata": {"name": NAME},
        "spec": {
            "task": "classification",
            "dataset": {"uri": uri, "format": "parquet", "target": "default", "features": FEATURES,
                        "categorical": CATEGORICAL, "sensitive": ["sex", "age", "race", "marital_status"]},
            "estimator": {"className": "HistGradientBoostingClassifier", "params": {"max_iter": 50},
                          "seed": 7},
            "qualityGates": {"minRocAuc": 0.65},
            "fairnessGates": {"minGroupSize": 30},
            # After drift the data changed, so the holdouts differ: lenient relative gates.
            "retraining": {"challengerGates": {"maxMetricDecrease": 0.2, "maxFairnessRegression": 0.5}},
        },
    }  # fmt: skip
    deployment = {
        "apiVersion": api,
        "kind": "Deployment",
        "metadata": {"name": NAME},
        "spec": {"modelRef": {"name": NAME}, "replicas": 1, "canary": SPLIT},
    }
    monitor = {
        "apiVersion": api,
        "kind": "Monitor",
        "metadata": {"name": NAME},
        "spec": {
            "deploymentRef": {"name": NAME},
            "window": {"kind": "tumbling", "size": 500, "minSamples": 400},
            "drift": {"consecutiveWindows": 2},
            "evaluationIntervalSeconds": 5,
            "actions": {"retrain": True, "cooldown": "1h", "maxRetrainsPerDay": 1},
        },
    }
    return [model, deployment, monitor]


def _get(local_stack: stack.Stack, resource: str, name: str = NAME) -> Json:
    out = local_stack.cp.kubectl("get", resource, name, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _status(local_stack: stack.Stack, resource: str) -> Json:
    found: Json = _get(local_stack, resource).get("status") or {}
    return found


def _version(local_stack: stack.Stack, number: int) -> Json | None:
    versions = _status(local_stack, "models").get("versions") or []
    return next((v for v in versions if v["version"] == number), None)


def _alias(local_stack: stack.Stack, alias: str) -> int | None:
    found = (_status(local_stack, "models").get("aliases") or {}).get(alias)
    return int(found) if found is not None else None


def _finished(local_stack: stack.Stack, number: int) -> bool:
    return (_version(local_stack, number) or {}).get("phase") in {"Succeeded", "Failed"}


def _rolled_back(local_stack: stack.Stack, number: int) -> bool:
    rollout = _status(local_stack, DEPLOYMENTS).get("rollout") or {}
    return rollout.get("phase") == "RolledBack" and rollout.get("version") == number


def _answering(live: traffic.Background, answered_before: int, version: str) -> bool:
    """More answers since ``answered_before``, the latest from ``version``."""
    return sum(live.versions.values()) > answered_before + 5 and live.last_version == version


def _phase(local_stack: stack.Stack) -> str:
    return str((_status(local_stack, DEPLOYMENTS).get("rollout") or {}).get("phase", ""))


def _routing(local_stack: stack.Stack) -> Json:
    data = _get(local_stack, "configmaps", f"{NAME}-routing").get("data") or {}
    result: Json = json.loads(data.get("routing.json", "{}"))
    return result


def _write_atomically(frame: pd.DataFrame, path: pathlib.Path) -> str:
    """Replace the file behind the dataset URI in one rename; return its sha256."""
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    generator.write(frame, partial)
    os.replace(partial, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _infer_url(local_stack: stack.Stack) -> str | None:
    """The .../infer URL of the one live, Ready serving pod that carries the monitor sidecar."""
    out = local_stack.cp.kubectl(
        "get", "pods", "-n", NAMESPACE, "-o", "json",
        "-l", f"app.kubernetes.io/name=mlsteward-server,app.kubernetes.io/instance={NAME}",
    )  # fmt: skip
    pods = json.loads(out.stdout)["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if len(pods) != 1 or len(live) != 1:
        return None
    pod = live[0]
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    monitored = any(c["name"] == "monitor" for c in pod["spec"]["containers"])
    return f"http://{pod['status']['podIP']}:8080/v2/models/{NAME}/infer" if ready and monitored else None


def _mlsteward(local_stack: stack.Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlsteward", *args, "-n", NAMESPACE],
        capture_output=True,
        text=True,
        env=dict(os.environ, KUBECONFIG=str(local_stack.cp.kubeconfig)),
        timeout=90,
        check=False,
    )


@pytest.fixture(scope="module")
def live(local_stack: stack.Stack, datasets: dict[str, pathlib.Path]) -> Iterator[traffic.Background]:
    """The Model trained on normal data, served with its monitor, under steady shifted traffic.

    The shifted population arrives and the data behind the dataset URI is refreshed with it at
    the same moment, so the retrain that the drift asks for learns from the new population.
    """
    stack.create_namespace(local_stack.cp, NAMESPACE, local_stack.directory / "store")
    data = local_stack.data.directory / DATASET
    _write_atomically(pd.read_parquet(datasets["normal"]), data)
    for manifest in _manifests(local_stack.data.url(DATASET)):
        local_stack.cp.kubectl("apply", "-n", NAMESPACE, "-f", "-", input_text=yaml.safe_dump(manifest))
    stack.wait_for("version 1 champion", lambda: _alias(local_stack, "champion") == 1, 300, local_stack)
    stack.wait_for("a Ready serving pod with its monitor", lambda: _infer_url(local_stack), 180, local_stack)
    shifted = generator.generate(4000, seed=2, shift=True)
    _write_atomically(shifted, data)
    with traffic.Background(
        lambda: _infer_url(local_stack), shifted, NUMERIC, CATEGORICAL, ["sex"]
    ) as sender:
        yield sender


def test_sustained_drift_retrains_on_the_refreshed_data_and_the_canary_promotes_version_2(
    local_stack: stack.Stack, live: traffic.Background
) -> None:
    refreshed = hashlib.sha256((local_stack.data.directory / DATASET).read_bytes()).hexdigest()
    stack.wait_for("the Monitor's retrain request", lambda: _version(local_stack, 2), 180, local_stack)
    model = _get(local_stack, "models")
    assert model["metadata"]["annotations"]["mlsteward.io/retrain"].startswith(f"drift/{NAME}/")
    assert _status(local_stack, "monitors")["retrainRequestsToday"] == 1

    stack.wait_for("version 2 trained", lambda: _finished(local_stack, 2), 300, local_stack)
    v2 = _version(local_stack, 2) or {}
    assert v2["datasetSha256"] == refreshed and v2["gates"]["promotable"] is True
    assert v2["challenge"]["passed"] is True and v2["challenge"]["champion"] == 1, v2["challenge"]
    # the Job scored version 1's verified artifact on version 2's own holdout (refreshed data)
    v1_digest = (_version(local_stack, 1) or {})["artifact"]["digest"]
    comparison = v2["championComparison"]
    assert comparison["digest"] == v1_digest and comparison["sameHoldout"] is True, comparison
    assert set(v2["metrics"]) <= set(comparison["metrics"]) and v2["challenge"]["sameHoldout"] is True

    stack.wait_for("the promotion", lambda: _phase(local_stack) == "Promoted", 120, local_stack)
    status = _status(local_stack, DEPLOYMENTS)
    assert status["activeVersion"] == 2 and status.get("canaryVersion") is None
    assert status["rollout"]["lastAnalysis"]["verdict"] == "Passed"
    assert status["rollout"]["lastAnalysis"]["canaryRequests"] >= 10
    assert [(r["action"], r["version"]) for r in status["history"]] == [("started", 1), ("promoted", 2)]
    assert history.verify(status["history"]) == []
    events = local_stack.cp.kubectl(
        "get", "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={NAME}", "-o", "json"
    )  # fmt: skip
    reasons = {e["reason"] for e in json.loads(events.stdout)["items"]}
    assert {"RolloutStarted", "StepStarted", "AnalysisPassed", "Promoted"} <= reasons, reasons
    assert _routing(local_stack)["champion"]["version"] == "2" and _routing(local_stack)["challenger"] is None
    stack.wait_for(
        "the champion alias to follow", lambda: _alias(local_stack, "champion") == 2, 30, local_stack
    )
    answered = sum(live.versions.values())
    stack.wait_for("answers from version 2", lambda: _answering(live, answered, "2"), 30, local_stack)
    assert live.versions["1"] > 0 and live.versions["2"] > 0, live.versions


def test_a_bad_version_is_rolled_back_by_the_shadow_analysis_and_the_kill_switch_restores_version_1(
    local_stack: stack.Stack, live: traffic.Background
) -> None:
    stack.wait_for("version 2 promoted", lambda: _phase(local_stack) == "Promoted", 420, local_stack)
    # A deliberately bad version: labels inverted. On its own holdout it looks as good as the
    # champion, so the (lenient) challenger gates pass; only live traffic shows it disagrees.
    patch = json.dumps({"spec": {"canary": SHADOW}})
    local_stack.cp.kubectl("patch", DEPLOYMENTS, NAME, "-n", NAMESPACE, "--type=merge", "-p", patch)
    inverted = generator.generate(4000, seed=3, shift=True)
    inverted["default"] = 1 - inverted["default"]
    _write_atomically(inverted, local_stack.data.directory / DATASET)
    local_stack.cp.kubectl(
        "annotate", "models", NAME, "-n", NAMESPACE, "mlsteward.io/retrain=bad", "--overwrite"
    )
    stack.wait_for(
        "version 3 as the challenger", lambda: _alias(local_stack, "challenger") == 3, 300, local_stack
    )
    stack.wait_for("version 3 rolled back", lambda: _rolled_back(local_stack, 3), 90, local_stack)
    status = _status(local_stack, DEPLOYMENTS)
    analysis = status["rollout"]["lastAnalysis"]
    assert analysis["verdict"] == "Failed" and analysis["disagreement"] > 0.3, analysis
    assert status["activeVersion"] == 2 and 3 in status["rejectedVersions"]
    assert status["history"][-1]["action"] == "rolledBack" and history.verify(status["history"]) == []
    assert _routing(local_stack)["challenger"] is None
    assert _status(local_stack, "models")["aliases"]["champion"] == 2
    assert live.last_version == "2" and live.versions["3"] == 0, live.versions

    # The kill switch with no rollout in progress: the version served before comes back.
    rolled = _mlsteward(local_stack, "rollback", NAME)
    assert rolled.returncode == 0, rolled.stderr
    stack.wait_for("version 1 in the routing",
                   lambda: _routing(local_stack)["champion"]["version"] == "1", 15, local_stack)  # fmt: skip
    records = _status(local_stack, DEPLOYMENTS)["history"]
    assert records[-1]["action"] == "killSwitch" and records[-1]["version"] == 1
    stack.wait_for("the champion back to 1", lambda: _alias(local_stack, "champion") == 1, 30, local_stack)
    answered = sum(live.versions.values())
    stack.wait_for("answers from version 1 again", lambda: _answering(live, answered, "1"), 30, local_stack)
    shown = _mlsteward(local_stack, "history", NAME)
    assert shown.returncode == 0 and "killSwitch" in shown.stdout, shown.stdout + shown.stderr
    assert _mlsteward(local_stack, "history", NAME, "--verify").returncode == 0
