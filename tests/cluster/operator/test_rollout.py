"""The safe model loop on the real control plane: approval, canary steps with analysis,
promotion, automatic rollback (errors, drifted predictions, worse labelled performance), the
kill switch, and retraining requests from a Monitor.

The one stand-in: a serving pod's metrics endpoint. KWOK pods run no container, so the test
serves ``/metrics`` (and the Monitor's ``/summary``) itself from a real HTTP server bound to the
pod's IP (127.64.x.y) on the port the operator is told, with counters that grow with time like
a server's under steady traffic. Everything else is real: the API server, admission policies,
RBAC for the people and the operator, the operator process, the mlsteward commands.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from mlsteward.dev import controlplane
from mlsteward.operator import history
from tests.cluster.operator.conftest import REPO_ROOT, Kit, OperatorProcess, PodEndpoint, monitor_summary
from tests.cluster.operator.test_models import outcome
from tests.cluster.operator.test_serving import TRAINING_POOL

Json = dict[str, Any]
API = "mlsteward.io/v1alpha1"
DEPLOYMENTS = "deployments.mlsteward.io"
MODELS = "models.mlsteward.io"


@pytest.fixture(scope="session")
def admission(control_plane: controlplane.ControlPlane) -> None:
    """The approval admission policies and the approver role, as shipped."""
    control_plane.kubectl(
        "apply", "--server-side", "--field-manager=mlsteward-tests",
        "-f", str(REPO_ROOT / "deploy" / "admission" / "approvals.yaml"),
    )  # fmt: skip


def _person(kit: Kit, name: str, cluster_role: str, directory: pathlib.Path) -> tuple[str, pathlib.Path]:
    """A ServiceAccount standing for a person, bound to ``cluster_role`` in the namespace; its
    user name and a kubeconfig with its token (namespace preset)."""
    kit.kubectl("create", "serviceaccount", name)
    kit.kubectl("create", "rolebinding", f"{name}-{cluster_role}", f"--clusterrole={cluster_role}",
                f"--serviceaccount={kit.namespace}:{name}")  # fmt: skip
    token = kit.kubectl("create", "token", name, "--duration=1h").strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": kit.cp.server,
                                          "certificate-authority": str(kit.cp.directory / "pki" / "ca.crt")}}
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": "local", "context": {"cluster": "local", "user": name, "namespace": kit.namespace}}
        ],
        "current-context": "local",
    }  # fmt: skip
    path = directory / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return f"system:serviceaccount:{kit.namespace}:{name}", path


def _mlsteward(kubeconfig: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    return subprocess.run(
        [sys.executable, "-m", "mlsteward", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _model(name: str) -> Json:
    body: Json = yaml.safe_load((REPO_ROOT / "examples" / "credit-model.yaml").read_text())
    body["metadata"]["name"] = name
    return body


def _deployment(canary: Json, approval: bool = False) -> Json:
    return {
        "apiVersion": API,
        "kind": "Deployment",
        "metadata": {"name": "serve"},
        "spec": {"modelRef": {"name": "credit"}, "canary": canary, "approval": {"required": approval}},
    }


def _status(kit: Kit) -> Json:
    found: Json = (kit.get(DEPLOYMENTS, "serve") or {}).get("status") or {}
    return found


def _routing(kit: Kit) -> Json:
    data = (kit.get("configmaps", "serve-routing") or {}).get("data") or {}
    result: Json = json.loads(data.get("routing.json", "{}"))
    return result


def _train(kit: Kit, version: int, digest: str) -> None:
    if version > 1:
        kit.kubectl("annotate", MODELS, "credit", f"mlsteward.io/retrain=by-hand-{version}", "--overwrite")
    kit.finish_training(f"credit-v{version}", outcome(digest))
    alias = "champion" if version == 1 else "challenger"
    kit.wait_for(
        f"version {version} as {alias}",
        lambda: kit.model_status("credit").get("aliases", {}).get(alias) == version,
    )


def _serving_pod_ip(kit: Kit, containers: int = 1) -> str:
    """The IP of a running serving pod with ``containers`` containers (2: with the monitor sidecar)."""
    pod = kit.wait_for(
        "a running serving pod",
        lambda: next(
            (p for p in kit.items("pods", "mlsteward.io/deployment=serve")
             if p.get("status", {}).get("podIP") and not p["metadata"].get("deletionTimestamp")
             and len(p["spec"]["containers"]) == containers),
            None,
        ),
        timeout=120,
    )  # fmt: skip
    return str(pod["status"]["podIP"])


def _phase(kit: Kit) -> str:
    return str((_status(kit).get("rollout") or {}).get("phase", ""))


@pytest.mark.usefixtures("admission", "bound_store")
def test_an_approved_good_challenger_passes_shadow_and_every_step_then_the_kill_switch_restores_v1(
    kit: Kit,
    start_operator: Callable[..., OperatorProcess],
    pod_endpoint: Callable[[str, int], PodEndpoint],
    tmp_path: pathlib.Path,
) -> None:
    port = controlplane.free_port()
    start_operator(*TRAINING_POOL, "--server-port", str(port))
    kit.apply(_model("credit"))
    _train(kit, 1, "a" * 64)
    canary = {"mode": "shadow", "trafficPercent": 10, "steps": [50, 100],
              "analysis": {"interval": "1s", "minRequests": 10, "maxDisagreement": 0.1}}  # fmt: skip
    kit.apply(_deployment(canary, approval=True))
    pod_endpoint(_serving_pod_ip(kit), port)
    _train(kit, 2, "b" * 64)

    # Unapproved: the rollout waits and the challenger gets no traffic, not even a shadow.
    kit.wait_for("the rollout to wait for approval", lambda: _phase(kit) == "WaitingForApproval")
    time.sleep(2)
    assert _routing(kit)["challenger"] is None and _phase(kit) == "WaitingForApproval"
    assert "mlsteward approve serve --version 2" in _status(kit)["rollout"]["message"]

    # Plain editors cannot approve; approvers can approve only in their own name.
    alice, _ = _person(kit, "alice", "edit", tmp_path)
    bob, bob_config = _person(kit, "bob", "mlsteward-approver", tmp_path)
    forged = {
        "apiVersion": API,
        "kind": "Approval",
        "metadata": {"name": "forged"},
        "spec": {"deployment": "serve", "version": 2, "digest": "b" * 64, "approvedBy": alice},
    }
    as_alice = kit.cp.kubectl("create", "-n", kit.namespace, f"--as={alice}", "-f", "-",
                              input_text=yaml.safe_dump(forged), check=False)  # fmt: skip
    assert as_alice.returncode != 0 and "forbidden" in as_alice.stderr.lower()
    as_bob = kit.cp.kubectl("create", "-n", kit.namespace, f"--as={bob}", "-f", "-",
                            input_text=yaml.safe_dump(forged), check=False)  # fmt: skip
    assert as_bob.returncode != 0 and "spec.approvedBy: must be your own user name" in as_bob.stderr
    approved = _mlsteward(bob_config, "approve", "serve", "--version", "2", "--reason", "looks good")
    assert approved.returncode == 0, approved.stderr

    kit.wait_for("promotion", lambda: _phase(kit) == "Promoted", timeout=60)
    status = _status(kit)
    assert status["activeVersion"] == 2 and status.get("canaryVersion") is None
    assert status["rollout"]["approvedBy"] == bob and status["rollout"]["lastAnalysis"]["verdict"] == "Passed"
    assert _routing(kit)["champion"]["version"] == "2" and _routing(kit)["challenger"] is None
    records = status["history"]
    assert [(r["action"], r["version"]) for r in records] == [("started", 1), ("promoted", 2)]
    assert records[1]["approvedBy"] == bob and history.verify(records) == []
    kit.wait_for("the Model to follow", lambda: kit.model_status("credit")["aliases"].get("champion") == 2)
    reasons = [e["reason"] for e in kit.events("serve")]
    for reason in ("WaitingForApproval", "Approved", "StepStarted", "AnalysisPassed", "Promoted"):
        assert reason in reasons, reasons
    table = kit.kubectl("get", DEPLOYMENTS, "serve")
    assert "Promoted" in table and "Passed" in table

    # Which version served when, and an edit is detected.
    admin = kit.cp.kubeconfig
    between = records[1]["at"]
    assert "version 2" in _mlsteward(admin, "history", "serve", "-n", kit.namespace, "--at", between).stdout
    assert _mlsteward(admin, "history", "serve", "-n", kit.namespace, "--verify").returncode == 0

    # Kill switch after the promotion: version 1 serves again, within seconds.
    began = time.monotonic()
    killed = _mlsteward(admin, "rollback", "serve", "-n", kit.namespace)
    assert killed.returncode == 0, killed.stderr
    kit.wait_for("version 1 in the routing", lambda: _routing(kit)["champion"]["version"] == "1", timeout=10)
    print(f"kill switch to routing: {time.monotonic() - began:.2f} s")
    records = _status(kit)["history"]
    assert (
        records[-1]["action"] == "killSwitch"
        and records[-1]["version"] == 1
        and history.verify(records) == []
    )
    kit.wait_for(
        "the Model champion back to 1", lambda: kit.model_status("credit")["aliases"].get("champion") == 1
    )

    tampered = [dict(r) for r in records]
    tampered[1]["approvedBy"] = "mallory"
    kit.kubectl("patch", DEPLOYMENTS, "serve", "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"history": tampered}}))  # fmt: skip
    broken = _mlsteward(admin, "history", "serve", "-n", kit.namespace, "--verify")
    assert broken.returncode == 1 and "history[1]" in broken.stderr


def test_a_bad_challenger_is_rolled_back_automatically_for_errors_and_for_drifted_predictions(
    kit: Kit,
    start_operator: Callable[..., OperatorProcess],
    bound_store: str,
    pod_endpoint: Callable[[str, int], PodEndpoint],
) -> None:
    port = controlplane.free_port()
    start_operator(*TRAINING_POOL, "--server-port", str(port))
    kit.apply(_model("credit"))
    _train(kit, 1, "a" * 64)
    split: Json = {"trafficPercent": 50, "steps": [100], "analysis": {"interval": "1s", "minRequests": 10,
                                                                 "maxErrorRateIncrease": 0.05}}  # fmt: skip
    kit.apply(_deployment(split))
    endpoint = pod_endpoint(_serving_pod_ip(kit), port)
    endpoint.set(canary5xx=25.0)  # a third of the canary's answers fail
    _train(kit, 2, "b" * 64)
    kit.wait_for("the rollback", lambda: _phase(kit) == "RolledBack", timeout=30)
    status = _status(kit)
    assert (
        status["activeVersion"] == 1
        and status.get("canaryVersion") is None
        and 2 in status["rejectedVersions"]
    )
    assert status["rollout"]["lastAnalysis"]["verdict"] == "Failed"
    assert "maxErrorRateIncrease" in status["rollout"]["lastAnalysis"]["message"]
    assert _routing(kit)["challenger"] is None and status["history"][-1]["action"] == "rolledBack"
    assert kit.model_status("credit")["aliases"]["champion"] == 1

    # Drifted predictions: a shadow step that disagrees with the champion.
    shadow = {**split, "mode": "shadow", "analysis": {**split["analysis"], "maxDisagreement": 0.1}}
    kit.apply(_deployment(shadow))
    endpoint.set(canary5xx=0.0, agree=30.0, disagree=20.0)
    _train(kit, 3, "c" * 64)
    kit.wait_for("version 3's rollout", lambda: (_status(kit).get("rollout") or {}).get("version") == 3)
    kit.wait_for("the shadow rollback", lambda: _phase(kit) == "RolledBack", timeout=30)
    analysis = _status(kit)["rollout"]["lastAnalysis"]
    assert analysis["verdict"] == "Failed" and analysis["disagreement"] > 0.1 and analysis["step"] == 1
    assert _routing(kit)["challenger"] is None and _status(kit)["activeVersion"] == 1
    assert any(e["reason"] == "RolledBack" and e["type"] == "Warning" for e in kit.events("serve"))


def test_a_canary_with_worse_labelled_accuracy_is_rolled_back_for_performance(
    kit: Kit,
    start_operator: Callable[..., OperatorProcess],
    bound_store: str,
    pod_endpoint: Callable[[str, int], PodEndpoint],
) -> None:
    port = controlplane.free_port()  # one stand-in answers both /metrics and the monitor's /summary
    start_operator(*TRAINING_POOL, "--server-port", str(port), "--monitor-port", str(port))
    kit.apply(_model("credit"))
    _train(kit, 1, "a" * 64)
    split: Json = {"trafficPercent": 50, "steps": [100], "analysis": {
        "interval": "1s", "minRequests": 10, "minLabels": 50, "maxPerformanceDecrease": 0.05}}  # fmt: skip
    kit.apply(_deployment(split))
    kit.apply({"apiVersion": API, "kind": "Monitor", "metadata": {"name": "watch"},
               "spec": {"deploymentRef": {"name": "serve"}}})  # fmt: skip
    endpoint = pod_endpoint(_serving_pod_ip(kit, containers=2), port)
    endpoint.summary = {
        **monitor_summary(False),
        "performanceByVersion": {
            "1": {"labeled": 400, "accuracy": 0.91, "rocAuc": 0.88, "rmse": None, "mae": None},
            "2": {"labeled": 120, "accuracy": 0.78, "rocAuc": 0.87, "rmse": None, "mae": None},
        },
    }
    _train(kit, 2, "b" * 64)
    kit.wait_for("the rollback", lambda: _phase(kit) == "RolledBack", timeout=30)
    status = _status(kit)
    analysis = status["rollout"]["lastAnalysis"]
    assert analysis["verdict"] == "Failed" and analysis["step"] == 1
    assert analysis["canaryAccuracy"] == 0.78 and analysis["stableAccuracy"] == 0.91
    assert analysis["canaryLabels"] == 120 and analysis["stableLabels"] == 400
    assert "performance: accuracy falls by 0.1300" in analysis["message"]
    assert "rocAuc falls" not in analysis["message"] and "maxErrorRateIncrease" not in analysis["message"]
    assert status["activeVersion"] == 1 and 2 in status["rejectedVersions"]
    assert "performance" in status["history"][-1]["reason"] and _routing(kit)["challenger"] is None


@pytest.mark.usefixtures("admission", "bound_store")
def test_the_kill_switch_stops_a_rollout_waiting_for_approval_in_shadow_and_in_a_traffic_step(
    kit: Kit,
    start_operator: Callable[..., OperatorProcess],
    pod_endpoint: Callable[[str, int], PodEndpoint],
) -> None:
    port = controlplane.free_port()
    start_operator(*TRAINING_POOL, "--server-port", str(port))
    kit.apply(_model("credit"))
    _train(kit, 1, "a" * 64)
    canary = {"mode": "shadow", "trafficPercent": 20, "steps": [100],
              "analysis": {"interval": "5s", "minRequests": 10, "maxDisagreement": 0.1}}  # fmt: skip
    kit.apply(_deployment(canary, approval=True))
    endpoint = pod_endpoint(_serving_pod_ip(kit), port)
    endpoint.set(canary=0.0, agree=0.0)  # no traffic at all: every step pauses where it is
    admin = kit.cp.kubeconfig

    def kill(version: int, state: str, routed: Callable[[Json], bool]) -> None:
        kit.wait_for(
            f"version {version} {state}",
            lambda: (_status(kit).get("rollout") or {}).get("version") == version and routed(_routing(kit)),
            timeout=60,
        )
        began = time.monotonic()
        killed = _mlsteward(admin, "rollback", "serve", "-n", kit.namespace)
        assert killed.returncode == 0, killed.stderr
        kit.wait_for("all traffic on version 1", lambda: _routing(kit)["challenger"] is None, timeout=10)
        print(
            f"kill switch {state}: routing changed {time.monotonic() - began:.2f} s after the command started"
        )
        status = _status(kit)
        assert status["rollout"]["phase"] == "KillSwitch" and status["activeVersion"] == 1
        assert version in status["rejectedVersions"] and status["history"][-1]["action"] == "killSwitch"

    def approve(version: int) -> None:
        kit.wait_for(f"version {version}'s rollout", lambda: _phase(kit) == "WaitingForApproval")
        approved = _mlsteward(admin, "approve", "serve", "-n", kit.namespace, "--version", str(version))
        assert approved.returncode == 0, approved.stderr

    _train(kit, 2, "b" * 64)
    kill(2, "waiting for approval", lambda r: _phase(kit) == "WaitingForApproval" and r["challenger"] is None)
    _train(kit, 3, "c" * 64)
    approve(3)
    kill(3, "in its shadow step", lambda r: (r.get("challenger") or {}).get("mode") == "shadow")
    endpoint.set(agree=50.0)  # the shadow step of version 4 passes; its 20% step gets no traffic
    _train(kit, 4, "e" * 64)
    approve(4)
    kill(4, "in its 20% step", lambda r: (r.get("challenger") or {}).get("share") == 20)
    time.sleep(2)
    assert _routing(kit)["challenger"] is None  # a stopped version never comes back on its own
    actions = [r["action"] for r in _status(kit)["history"]]
    assert actions == ["started", "killSwitch", "killSwitch", "killSwitch"]


def test_a_monitor_asks_for_one_retrain_and_cooldown_and_cap_stop_a_storm(
    kit: Kit,
    start_operator: Callable[..., OperatorProcess],
    bound_store: str,
    pod_endpoint: Callable[[str, int], PodEndpoint],
) -> None:
    port = controlplane.free_port()
    start_operator(*TRAINING_POOL, "--monitor-port", str(port))
    model = _model("credit")
    model["spec"]["retraining"] = {"cooldown": "1h", "maxPerDay": 1}
    kit.apply(model)
    _train(kit, 1, "a" * 64)
    kit.apply({"apiVersion": API, "kind": "Deployment", "metadata": {"name": "serve"},
               "spec": {"modelRef": {"name": "credit"}}})  # fmt: skip
    monitor = {
        "apiVersion": API, "kind": "Monitor", "metadata": {"name": "watch"},
        "spec": {"deploymentRef": {"name": "serve"}, "evaluationIntervalSeconds": 5,
                 "drift": {"consecutiveWindows": 1},
                 "actions": {"retrain": True, "cooldown": "1s", "maxRetrainsPerDay": 1}},
    }  # fmt: skip
    kit.apply(monitor)
    endpoint = pod_endpoint(_serving_pod_ip(kit, containers=2), port)
    endpoint.summary = monitor_summary(True)

    def monitor_status() -> Json:
        found: Json = (kit.get("monitors.mlsteward.io", "watch") or {}).get("status") or {}
        return found

    kit.wait_for("a retrain request", lambda: monitor_status().get("retrainRequestsToday") == 1, timeout=60)
    token = (kit.get(MODELS, "credit") or {})["metadata"]["annotations"]["mlsteward.io/retrain"]
    assert token.startswith("drift/watch/")
    kit.wait_for("version 2 training", lambda: kit.get("jobs", "credit-v2"))
    kit.wait_for(
        "a throttled evaluation",
        lambda: any(e["reason"] == "RetrainThrottled" for e in kit.events("watch")),
        30,
    )
    assert monitor_status()["retrainRequestsToday"] == 1
    assert "daily cap" in next(e["message"] for e in kit.events("watch") if e["reason"] == "RetrainThrottled")
    kit.finish_training("credit-v2", outcome("b" * 64))
    # A second automatic request within the Model's own cooldown is refused there too.
    kit.kubectl(
        "annotate", MODELS, "credit", "mlsteward.io/retrain=drift/other/20260101T000000Z", "--overwrite"
    )
    kit.wait_for(
        "the Model's refusal", lambda: any(e["reason"] == "RetrainRefused" for e in kit.events("credit"))
    )
    retraining = kit.model_status("credit")["retraining"]
    assert retraining["retrainsToday"] == 1 and "cooldown" in retraining["message"]
    assert kit.get("jobs", "credit-v3") is None
