"""charts/mlsteward with the real Helm against the real control plane: lint, server-side dry
run, install, upgrade to other values, uninstall; the operator pod runs on a KWOK node.

The tests share one release (fixture ``release``, on the chart tests' own control plane); the
last one upgrades and then uninstalls it, so it stays last in this folder (test_access.py and
test_gitops.py sort before it).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from mlsteward.dev import controlplane
from mlsteward.operator import rbac
from tests.cluster.chart.conftest import (
    CHART,
    KUBE_VERSION,
    RELEASE,
    REPO_ROOT,
    Helm,
    get_json,
    restricted_namespace,
    wait_for,
    wait_operator_running,
)

pytestmark = pytest.mark.cluster
Json = dict[str, Any]


def _kinds(documents: list[Json]) -> list[tuple[str, str]]:
    return sorted((d["kind"], d["metadata"]["name"]) for d in documents)


def test_the_chart_lints_strictly_with_default_and_namespaced_values(helm: Helm) -> None:
    helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART))
    namespaced = ["--set", "operator.watchNamespaces={a,b}", "--set", "monitoring.prometheusOperator=true"]
    helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *namespaced)


def test_bad_values_are_refused_naming_the_field(helm: Helm) -> None:
    result = helm("template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION,
                  "--set", "operator.watchNamespaces={Not_A_Namespace}", check=False)  # fmt: skip

    assert result.returncode != 0
    assert "watchNamespaces" in result.stderr


def test_every_rendered_object_passes_a_server_side_dry_run(
    chart_plane: controlplane.ControlPlane, helm: Helm
) -> None:
    namespace = restricted_namespace(chart_plane, "chart-dry-run")
    documents = helm.template(
        "--namespace", namespace, "--set", "operator.watchNamespaces={" + namespace + "}"
    )
    text = yaml.safe_dump_all(documents)
    result = chart_plane.kubectl(
        "apply", "--dry-run=server", "--server-side", "--field-manager=mlsteward-chart-test",
        "--force-conflicts", "-n", namespace, "-f", "-", input_text=text, check=False,
    )  # fmt: skip
    chart_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)

    assert result.returncode == 0, result.stderr
    kinds = {kind for kind, _ in _kinds(documents)}
    assert {
        "CustomResourceDefinition", "Deployment", "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy",
        "ClusterRole", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ConfigMap",
    } <= kinds  # fmt: skip
    assert "ClusterRoleBinding" not in kinds  # namespaced: nothing cluster-wide for the operator


def test_crds_monitoring_and_keep_follow_the_values(helm: Helm) -> None:
    default = helm.template()
    crds = [d for d in default if d["kind"] == "CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == sorted(
        p.name.removesuffix(".yaml") for p in (REPO_ROOT / "crds").glob("*.yaml")
    )
    for crd in crds:
        source = yaml.safe_load((REPO_ROOT / "crds" / f"{crd['metadata']['name']}.yaml").read_text())
        assert crd["spec"] == source["spec"]
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert not [d for d in default if d["kind"] in {"PodMonitor", "PrometheusRule"}]

    without = helm.template("--set", "crds.install=false", "--set", "crds.keep=false")
    assert not [d for d in without if d["kind"] == "CustomResourceDefinition"]
    unkept = helm.template("--set", "crds.keep=false")
    assert all("annotations" not in d["metadata"] for d in unkept if d["kind"] == "CustomResourceDefinition")

    # Rendered when the Prometheus Operator's API exists, with exactly the plain rules file.
    monitored = helm.template("--api-versions", "monitoring.coreos.com/v1")
    rule = next(d for d in monitored if d["kind"] == "PrometheusRule")
    plain = yaml.safe_load((REPO_ROOT / "deploy" / "monitoring" / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == plain
    monitors = {d["metadata"]["name"]: d["spec"] for d in monitored if d["kind"] == "PodMonitor"}
    assert monitors["mlsteward-serving"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "mlsteward-server"}
    }
    operator_pod = next(d for d in monitored if d["kind"] == "Deployment")["spec"]["template"]
    assert (
        monitors["mlsteward-operator"]["selector"]["matchLabels"].items()
        <= operator_pod["metadata"]["labels"].items()
    )
    assert monitors["mlsteward-operator"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert {"name": "metrics", "containerPort": 8080, "protocol": "TCP"} in operator_pod["spec"][
        "containers"
    ][0]["ports"]
    dashboard = next(
        d for d in default if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mlsteward-dashboard"
    )
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["mlsteward.json"]) == json.loads(
        (REPO_ROOT / "deploy" / "monitoring" / "dashboard.json").read_text()
    )


def _operator_container(documents: list[Json]) -> Json:
    container: Json = next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def test_the_artifact_store_mount_is_off_by_default_and_read_only_when_set(helm: Helm) -> None:
    default = _operator_container(helm.template())
    assert not any(a.startswith("--store-root") for a in default["args"])
    assert [m["name"] for m in default["volumeMounts"]] == ["tmp"]

    mounted = helm.template(
        "--set", "operator.artifactStore.claimName=operator-store",
        "--set", "operator.artifactStore.modelClaimName=mlsteward-artifacts",
    )  # fmt: skip
    container = _operator_container(mounted)
    volumes = next(d for d in mounted if d["kind"] == "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert "--store-root=/var/lib/mlsteward/stores" in container["args"]
    assert {
        "name": "artifact-store",
        "mountPath": "/var/lib/mlsteward/stores/mlsteward-artifacts",
        "readOnly": True,
    } in container["volumeMounts"]
    assert {
        "name": "artifact-store",
        "persistentVolumeClaim": {"claimName": "operator-store", "readOnly": True},
    } in volumes


def test_the_rendered_prometheus_rule_passes_promtool(helm: Helm, tmp_path: pathlib.Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package (`make system-deps`)"
    rendered = helm.template("--set", "monitoring.prometheusOperator=true")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(next(d for d in rendered if d["kind"] == "PrometheusRule")["spec"]))

    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_installed_operator_runs_restricted_with_the_generated_rules(
    chart_plane: controlplane.ControlPlane, release: str
) -> None:
    deployment = get_json(chart_plane, "deployment", "mlsteward-operator", "-n", release) or {}
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    role = get_json(chart_plane, "clusterrole", "mlsteward-operator") or {}
    crd = get_json(chart_plane, "crd", "models.mlsteward.io") or {}

    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    assert container["command"] == ["mlsteward", "operator"]
    assert "--image=mlsteward:0.1.0" in container["args"]
    assert not any(a.startswith("--namespaces") for a in container["args"])
    assert {"--metrics-port=8080", "--metrics-host=$(POD_IP)"} <= set(container["args"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert role["rules"] == rbac.rules()
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE


def _cpu_request(cp: controlplane.ControlPlane, namespace: str) -> str:
    deployment = get_json(cp, "deployment", "mlsteward-operator", "-n", namespace) or {}
    request: str = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    return request


def test_upgrade_to_watched_namespaces_then_uninstall_leaves_only_the_kept_crds(
    chart_plane: controlplane.ControlPlane, helm: Helm, release: str
) -> None:
    cp = chart_plane
    watched = [restricted_namespace(cp, "watched"), restricted_namespace(cp, "watched")]
    before = wait_operator_running(cp, release)

    helm(
        "upgrade", RELEASE, str(CHART), "--namespace", release, "--reuse-values",
        "--set", "operator.watchNamespaces={" + ",".join(watched) + "}",
        "--set", "operator.resources.requests.cpu=200m", "--timeout", "90s",
    )  # fmt: skip

    after = wait_operator_running(cp, release, not_uid=before["metadata"]["uid"])
    args = after["spec"]["containers"][0]["args"]
    assert f"--namespaces={','.join(watched)}" in args
    assert _cpu_request(cp, release) == "200m"
    assert get_json(cp, "clusterrole", "mlsteward-operator") is None
    assert get_json(cp, "clusterrolebinding", "mlsteward-operator") is None
    for namespace in watched:
        role = get_json(cp, "role", "mlsteward-operator", "-n", namespace) or {}
        assert role.get("rules") == rbac.rules()
        binding = get_json(cp, "rolebinding", "mlsteward-operator", "-n", namespace) or {}
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "mlsteward-operator", "namespace": release}
        ]
    # The rollout replaced the pod: Recreate never runs two operators at once.
    history = (
        get_json(cp, "replicasets", "-n", release, "-l", "app.kubernetes.io/name=mlsteward-operator") or {}
    )
    assert len(history["items"]) == 2

    helm("uninstall", RELEASE, "--namespace", release, "--wait", "--timeout", "60s")

    selector = f"app.kubernetes.io/instance={RELEASE}"

    def leftovers() -> list[str]:
        kinds = "deployments,replicasets,pods,serviceaccounts,configmaps,networkpolicies,roles,rolebindings"
        names = cp.kubectl("get", kinds, "-A", "-l", selector, "-o", "name").stdout.split()
        cluster = (
            "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings"
        )
        names += cp.kubectl("get", cluster, "-l", selector, "-o", "name").stdout.split()
        return names

    wait_for("the release's objects to go", lambda: not leftovers(), timeout=60)
    kept = cp.kubectl("get", "crds", "-l", selector, "-o", "name").stdout.split()
    assert sorted(kept) == sorted(
        f"customresourcedefinition.apiextensions.k8s.io/{p.name.removesuffix('.yaml')}"
        for p in (REPO_ROOT / "crds").glob("*.yaml")
    )
    for namespace in watched:
        cp.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
