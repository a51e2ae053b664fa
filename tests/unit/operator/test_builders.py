"""The pure builders: deterministic names, owner references, restricted pods, exact commands."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlsteward.api import audit as api_audit
from mlsteward.api import deployment as api_deployment
from mlsteward.api import model as api_model
from mlsteward.api import monitor as api_monitor
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import common, monitoring, serving, training

OWNER = common.Owner(kind="Model", name="credit", namespace="risk", uid="uid-1")
SETTINGS = settings_module.Settings()


def model_spec(**extra: Any) -> api_model.ModelSpec:
    return api_model.ModelSpec.model_validate(
        {
            "task": "classification",
            "dataset": {"uri": "/data/x.csv", "target": "y", "features": ["a", "b"]},
            "estimator": {"className": "LogisticRegression"},
            **extra,
        }
    )


def _restricted(pod_spec: dict[str, Any]) -> None:
    """Every field Pod Security 'restricted' checks, on the pod and on every container."""
    pod = pod_spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod_spec["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert all("hostPath" not in v for v in pod_spec["volumes"])


def test_a_training_job_runs_the_trainer_with_every_path_as_a_flag() -> None:
    job = training.build_job(
        model_spec(resources={"requests": {"cpu": "2"}, "limits": {"memory": "4Gi"}}),
        OWNER,
        3,
        generation=5,
        retrain_token="again",
        spec_hash="f" * 64,
        settings=SETTINGS,
    )
    assert job["metadata"]["name"] == "credit-v3"
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "mlsteward.io/v1alpha1",
            "kind": "Model",
            "name": "credit",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["metadata"]["annotations"] == {
        "mlsteward.io/generation": "5",
        "mlsteward.io/spec-hash": "f" * 64,
        "mlsteward.io/retrain": "again",
    }
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 3600 and spec["backoffLimit"] == 1
    assert spec["ttlSecondsAfterFinished"] == 86400
    assert spec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]
    pod_spec = spec["template"]["spec"]
    _restricted(pod_spec)
    [container] = pod_spec["containers"]
    assert container["image"] == "mlsteward:0.1.0"
    assert container["command"] == [
        "mlsteward",
        "train",
        "--store",
        "/var/lib/mlsteward/store",
        "--termination-message-path",
        "/dev/termination-log",
        "--name",
        "credit",
        "--namespace",
        "risk",
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["MLSTEWARD_MODEL_SPEC"])["estimator"]["className"] == "LogisticRegression"
    assert container["resources"] == {"requests": {"cpu": "2"}, "limits": {"memory": "4Gi"}}
    assert {
        "name": "artifact-store",
        "mountPath": "/var/lib/mlsteward/store",
        "readOnly": False,
    } in container["volumeMounts"]
    assert pod_spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "mlsteward-artifacts"
    assert "nodeSelector" not in pod_spec


def test_the_same_inputs_build_the_same_job() -> None:
    def build() -> dict[str, Any]:
        return training.build_job(
            model_spec(), OWNER, 1, generation=1, retrain_token=None, spec_hash="0" * 64, settings=SETTINGS
        )

    assert build() == build()


def test_long_names_stay_valid_and_distinct() -> None:
    long_a, long_b = "a" * 80, "a" * 79 + "b"
    names = {training.job_name(long_a, 12), training.job_name(long_b, 12)}
    assert len(names) == 2
    assert all(len(n) <= 63 and n.endswith("-v12") for n in names)
    assert training.job_name("credit", 1) == "credit-v1"


def test_the_serving_deployment_names_no_version_so_a_new_version_restarts_no_pod() -> None:
    spec = api_deployment.DeploymentSpec.model_validate({"modelRef": {"name": "credit"}, "replicas": 2})
    owner = common.Owner(kind="Deployment", name="serve", namespace="risk", uid="uid-2")
    built = serving.build_deployment(spec, owner, claim_name="store", settings=SETTINGS)
    assert built["spec"]["replicas"] == 2
    pod_spec = built["spec"]["template"]["spec"]
    _restricted(pod_spec)
    [server] = pod_spec["containers"]
    assert server["command"][:2] == ["mlsteward", "serve"]
    assert (
        server["command"][server["command"].index("--routing") + 1] == "/etc/mlsteward/routing/routing.json"
    )
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    store = next(v for v in pod_spec["volumes"] if v["name"] == "artifact-store")
    # Writable for the monitor sidecar's decision log; the server's own mount is read-only.
    assert store["persistentVolumeClaim"] == {"claimName": "store", "readOnly": False}
    assert all(m["readOnly"] for m in server["volumeMounts"] if m["name"] != "tmp")
    assert "digest" not in json.dumps(built) and "version" not in json.dumps(built["spec"]["template"])


def test_an_autoscaled_deployment_leaves_replicas_to_the_autoscaler() -> None:
    spec = api_deployment.DeploymentSpec.model_validate(
        {"modelRef": {"name": "credit"}, "autoscaling": {"minReplicas": 2, "maxReplicas": 5}}
    )
    owner = common.Owner(kind="Deployment", name="serve", namespace="risk", uid="uid-2")
    assert "replicas" not in serving.build_deployment(spec, owner, claim_name="s", settings=SETTINGS)["spec"]
    assert spec.autoscaling is not None
    hpa = serving.build_autoscaler(spec.autoscaling, owner)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)


def test_the_routing_document_follows_the_contract() -> None:
    routing = serving.Routing(
        model="credit",
        champion=serving.Target(3, "a" * 64),
        challenger=serving.Target(4, "b" * 64),
        share=10,
        mode="shadow",
    )
    owner = common.Owner(kind="Deployment", name="serve", namespace="risk", uid="uid-2")
    config_map = serving.build_routing_config_map(routing, owner)
    assert config_map["metadata"]["name"] == "serve-routing"
    assert json.loads(config_map["data"]["routing.json"]) == {
        "model": "credit",
        "champion": {"version": "3", "digest": "a" * 64},
        "challenger": {"version": "4", "digest": "b" * 64, "share": 10, "mode": "shadow"},
    }


def test_the_sidecar_patch_is_partial_so_it_merges_by_container_name() -> None:
    patch = monitoring.build_sidecar_patch("serve", "risk", "watch", digest="c" * 64, settings=SETTINGS)
    template = patch["spec"]["template"]["spec"]
    server, sidecar = template["containers"]
    assert server == {
        "name": "server",
        "env": [{"name": "MLSTEWARD_SERVE_MONITOR_URL", "value": "http://$(POD_IP):8082"}],
    }
    assert sidecar["command"][:2] == ["mlsteward", "monitor"]
    flags = sidecar["command"]
    assert (
        flags[flags.index("--profile-artifact") + 1]
        == "/var/lib/mlsteward/store/artifacts/sha256/" + "c" * 64
    )
    assert flags[flags.index("--config") + 1] == "/etc/mlsteward/monitor/config.json"
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert set(patch["spec"]) == {"template"}, "the sidecar's manager must not own replicas or the selector"


def test_the_sidecar_writes_the_decision_log_into_the_store_unless_the_deployment_turns_it_off() -> None:
    def sidecar(policy: api_audit.DecisionLogPolicy | None) -> dict[str, Any]:
        patch = monitoring.build_sidecar_patch(
            "serve", "risk", "watch", digest="c" * 64, settings=SETTINGS, decision_log=policy
        )
        container: dict[str, Any] = patch["spec"]["template"]["spec"]["containers"][1]
        return container

    logging = sidecar(None)
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in logging["env"]}
    assert env["MLSTEWARD_MONITOR_DECISION_LOG_STORE"] == "/var/lib/mlsteward/store"
    assert env["MLSTEWARD_MONITOR_DECISION_LOG_DEPLOYMENT"] == "serve"
    assert env["MLSTEWARD_MONITOR_DECISION_LOG_RETENTION"] == "180d"
    assert env["MLSTEWARD_MONITOR_DECISION_LOG_INPUTS"] == "false"
    assert env["MLSTEWARD_MONITOR_DECISION_LOG_CHAIN"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    [store_mount] = [m for m in logging["volumeMounts"] if m["name"] == "artifact-store"]
    assert store_mount["readOnly"] is False

    quiet = sidecar(api_audit.DecisionLogPolicy.model_validate({"enabled": False}))
    assert not any(e["name"].startswith("MLSTEWARD_MONITOR_DECISION_LOG_") for e in quiet["env"])
    [store_mount] = [m for m in quiet["volumeMounts"] if m["name"] == "artifact-store"]
    assert store_mount["readOnly"] is True


def test_the_monitor_config_carries_the_spec_the_sidecar_reads() -> None:
    spec = api_monitor.MonitorSpec.model_validate(
        {"deploymentRef": {"name": "serve"}, "window": {"size": 500, "minSamples": 100}}
    )
    owner = common.Owner(kind="Monitor", name="watch", namespace="risk", uid="uid-3")
    document = json.loads(monitoring.build_config_map(spec, owner)["data"]["config.json"])
    assert document["window"]["size"] == 500 and "drift" in document and "deploymentRef" not in document


@pytest.mark.parametrize("node_selector", [(("pool", "training"),), ()])
def test_training_pods_follow_the_configured_node_selector(
    node_selector: tuple[tuple[str, str], ...],
) -> None:
    settings = settings_module.Settings(training_node_selector=node_selector)
    job = training.build_job(
        model_spec(), OWNER, 1, generation=1, retrain_token=None, spec_hash="0" * 64, settings=settings
    )
    assert job["spec"]["template"]["spec"].get("nodeSelector", {}) == dict(node_selector)
