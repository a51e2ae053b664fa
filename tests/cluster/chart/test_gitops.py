"""GitOps against the installed chart: the operator, run under the chart's ServiceAccount and
RBAC, never writes fields that Git owns; the Argo CD health checks (examples/gitops/health/*.lua,
run with lupa) read real status objects from the API server.

The operator runs as a local process (the chart's pod only runs on a KWOK node) with a token of
the ServiceAccount the chart created, so these tests also prove the chart's RBAC is enough.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import lupa
import pytest
import yaml

from mlsteward.dev import controlplane
from mlsteward.operator import conditions
from tests.cluster.chart.conftest import REPO_ROOT, get_json, restricted_namespace, wait_for

pytestmark = pytest.mark.cluster
Json = dict[str, Any]
GIT_MANAGER = "gitops-controller"
EXAMPLES = {
    "Model": ("models.mlsteward.io", "credit-model.yaml"),
    "Deployment": ("deployments.mlsteward.io", "credit-deployment.yaml"),
    "Monitor": ("monitors.mlsteward.io", "credit-monitor.yaml"),
}
HEALTH = REPO_ROOT / "examples" / "gitops" / "health"


def health(kind: str, body: Json) -> tuple[str, str]:
    """Run the Argo CD health check of ``kind`` on ``body`` as Argo CD does: ``obj`` in, ``hs`` out."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(body, recursive=True)
    result = lua.execute((HEALTH / f"{kind.lower()}.lua").read_text())
    return str(result["status"]), str(result["message"])


def _token_kubeconfig(cp: controlplane.ControlPlane, namespace: str, path: pathlib.Path) -> pathlib.Path:
    token = cp.kubectl(
        "create", "token", "mlsteward-operator", "-n", namespace, "--duration=1h"
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": cp.server,
                    "certificate-authority": str(cp.directory / "pki" / "ca.crt"),
                },
            }
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "operator"}}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def gitops_namespace(
    chart_plane: controlplane.ControlPlane, release: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A namespace with the examples applied by a GitOps field manager and the operator
    reconciling them under the chart's ServiceAccount."""
    namespace = restricted_namespace(chart_plane, "gitops")
    folder = tmp_path_factory.mktemp("gitops")
    env = dict(os.environ, KUBECONFIG=str(_token_kubeconfig(chart_plane, release, folder / "kubeconfig")))
    env.pop("KUBERNETES_SERVICE_HOST", None)
    log = folder / "operator.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlsteward", "operator", "--namespaces", namespace,
             "--resync-seconds", "10", "--watch-timeout-seconds", "30"],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        for _, file in EXAMPLES.values():
            chart_plane.kubectl(
                "apply", "--server-side", f"--field-manager={GIT_MANAGER}", "-n", namespace,
                "-f", str(REPO_ROOT / "examples" / file),
            )  # fmt: skip
        yield namespace
    finally:
        if process.poll() is None:
            chart_plane.kubectl(
                "delete", "monitors.mlsteward.io", "--all", "-n", namespace, "--timeout=30s", check=False
            )
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        print(f"\n----- operator log -----\n{log.read_text(errors='replace')[-10000:]}")
        chart_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _observed(cp: controlplane.ControlPlane, namespace: str, resource: str) -> Json:
    def current() -> Json | None:
        body = get_json(cp, resource, "-n", namespace, _name(resource))
        status = (body or {}).get("status") or {}
        if (
            body
            and status.get("conditions")
            and status.get("observedGeneration") == body["metadata"]["generation"]
        ):
            return body
        return None

    result: Json = wait_for(f"the operator to write the status of {resource}", current, timeout=60)
    return result


def _name(resource: str) -> str:
    kind = next(k for k, (r, _) in EXAMPLES.items() if r == resource)
    return str(yaml.safe_load((REPO_ROOT / "examples" / EXAMPLES[kind][1]).read_text())["metadata"]["name"])


def _paths(fields: Json, prefix: str = "") -> Iterator[str]:
    for key, value in fields.items():
        if key == ".":
            continue
        path = f"{prefix}.{key[2:] if key.startswith(('f:', 'k:')) else key}" if prefix else key[2:]
        if isinstance(value, dict) and value:
            yield from _paths(value, path)
        else:
            yield path


def test_the_operator_writes_only_status_and_its_finalizer_so_git_sees_no_drift(
    chart_plane: controlplane.ControlPlane, gitops_namespace: str
) -> None:
    cp = chart_plane
    for kind, (resource, file) in EXAMPLES.items():
        _observed(cp, gitops_namespace, resource)
        body = get_json(cp, resource, _name(resource), "-n", gitops_namespace, "--show-managed-fields") or {}
        foreign = [
            path
            for entry in body["metadata"]["managedFields"]
            if entry["manager"] != GIT_MANAGER
            for path in _paths(entry.get("fieldsV1", {}))
            if not (path.startswith("status") or path.startswith("metadata.finalizers"))
        ]
        assert foreign == [], f"{kind}: the operator wrote fields Git owns: {foreign}"
        assert any(
            e["manager"] != GIT_MANAGER and e.get("subresource") == "status"
            for e in body["metadata"]["managedFields"]
        )

        diff = cp.kubectl(
            "diff", "--server-side", f"--field-manager={GIT_MANAGER}", "-n", gitops_namespace,
            "-f", str(REPO_ROOT / "examples" / file), check=False,
        )  # fmt: skip
        assert diff.returncode == 0, f"{kind}: Git would see drift:\n{diff.stdout}{diff.stderr}"
        # Re-applying without --force-conflicts: nobody took a Git-owned field over.
        cp.kubectl("apply", "--server-side", f"--field-manager={GIT_MANAGER}", "-n", gitops_namespace,
                   "-f", str(REPO_ROOT / "examples" / file))  # fmt: skip


def test_the_health_checks_read_the_status_the_operator_wrote(
    chart_plane: controlplane.ControlPlane, gitops_namespace: str
) -> None:
    for kind, (resource, _) in EXAMPLES.items():
        body = _observed(chart_plane, gitops_namespace, resource)
        status, message = health(kind, body)
        # Nothing can train here (no artifact store is bound): the Model waits for its first
        # version, and the Deployment and Monitor wait for it.
        assert status == "Progressing", f"{kind}: {status} ({message}); status {json.dumps(body['status'])}"
        assert message


def _write_status(
    cp: controlplane.ControlPlane,
    namespace: str,
    resource: str,
    name: str,
    desired: list[Json],
    *,
    extra: Json | None = None,
) -> Json:
    body = get_json(cp, resource, name, "-n", namespace) or {}
    generation = body["metadata"]["generation"]
    status = {
        "observedGeneration": generation,
        "conditions": conditions.merge([], desired, generation=generation, now="2026-01-01T00:00:00Z"),
        **(extra or {}),
    }
    cp.kubectl("patch", resource, name, "-n", namespace, "--subresource=status", "--type=merge",
               "-p", json.dumps({"status": status}))  # fmt: skip
    stored: Json = get_json(cp, resource, name, "-n", namespace) or {}
    return stored


def test_the_health_checks_map_each_state_of_real_stored_objects(
    chart_plane: controlplane.ControlPlane, release: str
) -> None:
    cp = chart_plane
    # No operator watches this namespace: the statuses below are written through the status
    # subresource, in the operator's shape (its own conditions module), and read back.
    namespace = restricted_namespace(cp, "health")
    try:
        for _, file in EXAMPLES.values():
            cp.kubectl("apply", "-n", namespace, "-f", str(REPO_ROOT / "examples" / file))
        model, deployment, monitor = (EXAMPLES[k][0] for k in ("Model", "Deployment", "Monitor"))
        c, reason = conditions.condition, conditions.Reason

        fresh = get_json(cp, model, _name(model), "-n", namespace) or {}
        assert health("Model", fresh)[0] == "Progressing"

        ready = _write_status(cp, namespace, model, _name(model), [
            c("Ready", True, reason.VERSION_READY, "version 1 is the champion"),
            c("Reconciling", False, reason.RECONCILED, "nothing to do"),
            c("Stalled", False, reason.RECONCILED, "nothing to do"),
        ])  # fmt: skip
        assert health("Model", ready) == ("Healthy", "version 1 is the champion")

        failed = _write_status(cp, namespace, model, _name(model), [
            c("Ready", True, reason.VERSION_READY, "version 1 is the champion"),
            c("Reconciling", False, reason.RECONCILED, "nothing to do"),
            c("Stalled", True, reason.GATE_FAILED, "version 2 failed its fairness gate; version 1 stays"),
        ])  # fmt: skip
        assert health("Model", failed) == ("Degraded", "version 2 failed its fairness gate; version 1 stays")

        cp.kubectl("patch", model, _name(model), "-n", namespace, "--type=merge",
                   "-p", json.dumps({"spec": {"trainingDeadlineSeconds": 1800}}))  # fmt: skip
        changed = get_json(cp, model, _name(model), "-n", namespace) or {}
        assert changed["metadata"]["generation"] > changed["status"]["observedGeneration"]
        assert health("Model", changed)[0] == "Progressing"

        # A canary rollout waiting for a person, then one that failed its analysis.
        rollout = {"version": 2, "digest": "a" * 64, "stableVersion": 1, "phase": "WaitingForApproval",
                   "message": "version 2 waits for an Approval"}  # fmt: skip
        available = [c("Ready", True, reason.AVAILABLE, "1/1 serving pods ready with version 1")]
        waiting = _write_status(
            cp, namespace, deployment, _name(deployment), available, extra={"rollout": rollout}
        )
        assert health("Deployment", waiting) == ("Suspended", "version 2 waits for an Approval")
        failed_rollout = {
            **rollout,
            "phase": "RolledBack",
            "message": "version 2 failed its analysis at step 1",
        }
        rolled_back = _write_status(
            cp, namespace, deployment, _name(deployment), available, extra={"rollout": failed_rollout}
        )
        assert health("Deployment", rolled_back) == ("Degraded", "version 2 failed its analysis at step 1")

        drifting = _write_status(cp, namespace, monitor, _name(monitor), [
            c("Ready", True, reason.EVALUATED, "evaluated 5000 rows"),
            c("Drifting", True, reason.DRIFT_DETECTED, "income drifts (wasserstein 0.31 >= 0.1)"),
        ])  # fmt: skip
        assert health("Monitor", drifting) == ("Degraded", "income drifts (wasserstein 0.31 >= 0.1)")

        calm = _write_status(cp, namespace, monitor, _name(monitor), [
            c("Ready", True, reason.EVALUATED, "evaluated 5000 rows"),
            c("Drifting", False, reason.NO_DRIFT, "no drift"),
            c("Degraded", False, reason.WITHIN_LIMITS, "within limits"),
        ])  # fmt: skip
        assert health("Monitor", calm) == ("Healthy", "evaluated 5000 rows")
    finally:
        cp.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
