"""Least privilege, crashes and a restarting API server, on the real control plane."""

from __future__ import annotations

import pathlib
import random
import time
from collections.abc import Callable
from typing import Any

import yaml

from mlsteward.dev import controlplane
from mlsteward.operator import rbac
from tests.cluster.operator.conftest import Kit, OperatorProcess, token_kubeconfig
from tests.cluster.operator.test_models import jobs, model, outcome, version, versions

Json = dict[str, Any]


def test_the_committed_rbac_lets_the_operator_work_and_one_missing_permission_fails_visibly(
    control_plane: controlplane.ControlPlane,
    kit: Kit,
    start_operator: Callable[..., OperatorProcess],
    tmp_path: pathlib.Path,
) -> None:
    name = f"mlsteward-operator-less-{kit.namespace}"
    rules = [
        {**rule, "verbs": [v for v in rule["verbs"] if v != "create"]}
        if rule["apiGroups"] == ["batch"]
        else rule
        for rule in rbac.rules()
    ]
    manifests = rbac.manifests(name=name)
    manifests[1]["rules"] = rules
    control_plane.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(manifests))
    try:
        limited = start_operator(kubeconfig=token_kubeconfig(control_plane, name, tmp_path / "limited"))
        kit.apply(model("credit"))
        kit.wait_for(
            "a Forbidden error in the log", lambda: "403" in limited.logs() and "jobs" in limited.logs()
        )
        time.sleep(3)
        assert kit.items("jobs") == [], "a Job was created without the permission to create Jobs"
        assert versions(kit, "credit") == []
        limited.stop()
        # The same object, the committed rules: the Job appears.
        start_operator()
        kit.wait_for("the training Job under the committed rules", lambda: kit.get("jobs", "credit-v1"))
    finally:
        for kind, object_name in (("clusterrolebinding", name), ("clusterrole", name)):
            control_plane.kubectl("delete", kind, object_name, "--wait=false", check=False)
        control_plane.kubectl("delete", "serviceaccount", name, "-n", rbac.NAMESPACE, check=False)


def _converged(kit: Kit, names: list[str]) -> bool:
    for name in names:
        body = kit.get("models.mlsteward.io", name) or {}
        status = body.get("status") or {}
        found = status.get("versions") or []
        if status.get("observedGeneration") != body["metadata"]["generation"]:
            return False
        if not found or found[-1].get("generation") != body["metadata"]["generation"]:
            return False
        if any(v["phase"] == "Training" for v in found):
            return False
    return True


def _finish_pending(kit: Kit, names: list[str]) -> None:
    """Play kubelet for every training pod that has not terminated yet."""
    for name in names:
        for job in jobs(kit, name):
            pod = kit.training_pod(job["metadata"]["name"])
            if pod is not None and pod.get("status", {}).get("phase") == "Pending":
                number = int(job["metadata"]["labels"]["mlsteward.io/version"])
                kit.finish_training(job["metadata"]["name"], outcome(f"{number:064x}"))


def test_sigkill_at_random_points_leaves_exactly_one_job_per_version_and_a_correct_status(
    kit: Kit, start_operator: Callable[..., OperatorProcess], long_run: bool
) -> None:
    rounds = 25 if long_run else 5
    names = [f"m{i}" for i in range(4)]
    rng = random.Random(7)
    for name in names:
        kit.apply(model(name))
    operator = start_operator()
    for round_number in range(rounds):
        kit.wait_for(
            "the operator to start",
            lambda: operator.logs().count("mlsteward operator started") >= operator.starts,
        )
        # The world moves on while the operator reconciles, and it dies at a random moment.
        time.sleep(rng.uniform(0.0, 0.5))
        changed = rng.choice(names)
        kit.apply(
            model(changed, estimator={"className": "LogisticRegression", "params": {"C": round_number + 2}})
        )
        _finish_pending(kit, names)
        time.sleep(rng.uniform(0.0, 1.0))
        operator.kill()
        _finish_pending(kit, names)
        operator.start()
    for _ in range(60):
        _finish_pending(kit, names)
        if _converged(kit, names):
            break
        time.sleep(2)
    assert _converged(kit, names), {n: kit.model_status(n) for n in names}
    for name in names:
        recorded = versions(kit, name)
        numbers = [v["version"] for v in recorded]
        assert numbers == list(range(1, len(numbers) + 1)), f"{name}: versions {numbers}"
        job_names = sorted(j["metadata"]["name"] for j in jobs(kit, name))
        assert job_names == sorted(f"{name}-v{n}" for n in numbers), f"{name}: Jobs {job_names}"
        assert all(v["phase"] == "Succeeded" for v in recorded), recorded
        status = kit.model_status(name)
        assert status["latestVersion"] == numbers[-1] and status["aliases"]["champion"] == 1
        assert status["phase"] == "Ready"
    assert operator.starts == rounds + 1


def test_the_operator_recovers_its_watches_after_the_api_server_restarts(
    kit: Kit, start_operator: Callable[..., OperatorProcess]
) -> None:
    operator = start_operator()
    kit.apply(model("before"))
    kit.wait_for("the first Job", lambda: kit.get("jobs", "before-v1"))
    kit.restart_api_server()
    kit.apply(model("after"))
    kit.wait_for(
        "a Job for a Model created after the restart", lambda: kit.get("jobs", "after-v1"), timeout=180
    )
    kit.finish_training("before-v1", outcome())
    kit.wait_for("the outcome read after the restart", lambda: version(kit, "before", 1, "Succeeded"), 180)
    assert operator.alive()
