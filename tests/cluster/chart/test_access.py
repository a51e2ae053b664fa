"""The chart's user roles and admission policy on the real API server, through impersonation:
an editor (Kubernetes' own `edit`, which mlsteward-editor aggregates into) manages Models but
cannot add or change protected-attribute exceptions; a policy administrator can."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml

from mlsteward.dev import controlplane
from tests.cluster.chart.conftest import REPO_ROOT, restricted_namespace, wait_for

pytestmark = pytest.mark.cluster
Json = dict[str, Any]
GROUPS = {"alice": "credit-team", "carol": "risk-officers"}
EXCEPTION = {
    "attribute": "age",
    "approvalRef": "age-exception-2026",
    "justification": "Regulation B permits age in an empirically derived, statistically sound system.",
}


def _model(name: str, exceptions: list[Json] | None = None) -> Json:
    model: Json = yaml.safe_load((REPO_ROOT / "examples" / "credit-model.yaml").read_text())
    model["metadata"]["name"] = name
    if exceptions is not None:
        model["spec"]["dataset"]["features"].append("age")
        model["spec"]["dataset"]["sensitive"].remove("age")
        model["spec"]["protectedAttributes"]["exceptions"] = exceptions
    return model


def _as(
    cp: controlplane.ControlPlane, user: str, namespace: str, verb: str, manifest: Json
) -> tuple[int, str]:
    result = cp.kubectl(
        f"--as={user}", f"--as-group={GROUPS[user]}", verb, "-n", namespace, "-f", "-",
        input_text=yaml.safe_dump(manifest), check=False,
    )  # fmt: skip
    return result.returncode, result.stderr


def _can(cp: controlplane.ControlPlane, user: str, group: str, namespace: str, *what: str) -> bool:
    result = cp.kubectl(
        "auth", "can-i", f"--as={user}", f"--as-group={group}", "-n", namespace, *what, check=False
    )
    return result.stdout.strip() == "yes"


def test_editors_manage_models_but_only_policy_admins_change_exceptions(
    chart_plane: controlplane.ControlPlane, release: str, tmp_path: pathlib.Path
) -> None:
    cp = chart_plane
    namespace = restricted_namespace(cp, "roles")
    try:
        cp.kubectl("create", "rolebinding", "editors", "--clusterrole=edit", "--group=credit-team",
                   "--group=risk-officers", "-n", namespace)  # fmt: skip
        cp.kubectl("create", "rolebinding", "policy-admins", "--clusterrole=mlsteward-policy-admin",
                   "--group=risk-officers", "-n", namespace)  # fmt: skip
        cp.kubectl("create", "rolebinding", "approvers", "--clusterrole=mlsteward-approver",
                   "--group=risk-officers", "-n", namespace)  # fmt: skip
        # Kubernetes' edit role gains our kinds through aggregation (the controller-manager's job).
        wait_for(
            "mlsteward-editor to aggregate into edit",
            lambda: _can(cp, "alice", "credit-team", namespace, "create", "models.mlsteward.io"),
        )
        assert _can(cp, "alice", "credit-team", namespace, "delete", "monitors.mlsteward.io")
        assert not _can(cp, "alice", "credit-team", namespace, "approve-exceptions", "models.mlsteward.io")
        assert not _can(cp, "alice", "credit-team", namespace, "create", "approvals.mlsteward.io")
        assert _can(cp, "carol", "risk-officers", namespace, "create", "approvals.mlsteward.io")
        assert not _can(cp, "carol", "risk-officers", namespace, "delete", "approvals.mlsteward.io")

        code, stderr = _as(cp, "alice", namespace, "create", _model("plain"))
        assert code == 0, stderr

        code, stderr = _as(cp, "alice", namespace, "create", _model("with-age", [EXCEPTION]))
        assert code != 0
        assert "spec.protectedAttributes.exceptions" in stderr and "approve-exceptions" in stderr, stderr
        assert "alice may not" in stderr, stderr

        code, stderr = _as(cp, "alice", namespace, "apply", _model("plain", [EXCEPTION]))
        assert code != 0 and "mlsteward-protected-attribute-exceptions" in stderr, stderr

        code, stderr = _as(cp, "carol", namespace, "create", _model("with-age", [EXCEPTION]))
        assert code == 0, stderr

        # An editor may still change everything else of a Model that carries exceptions...
        edited = _model("with-age", [EXCEPTION])
        edited["spec"]["trainingDeadlineSeconds"] = 1800
        code, stderr = _as(cp, "alice", namespace, "apply", edited)
        assert code == 0, stderr
        # ...but not the exceptions themselves.
        widened = copy.deepcopy(edited)
        widened["spec"]["protectedAttributes"]["exceptions"][0]["justification"] += " Renewed."
        code, stderr = _as(cp, "alice", namespace, "apply", widened)
        assert code != 0 and "approve-exceptions" in stderr, stderr
    finally:
        cp.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
