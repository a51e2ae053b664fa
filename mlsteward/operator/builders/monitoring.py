"""What a Monitor adds to its target: the drift-monitor sidecar, its config, the metrics port.

The sidecar is applied to the target apps/v1 Deployment with server-side apply under its own
field manager (:data:`FIELD_MANAGER`), as a *partial* object: containers, volumes and env
entries merge by name, so the serving reconciler's manager and this one each own only their
parts, and deleting the Monitor (an empty apply by this manager) removes exactly the sidecar.
"""

from __future__ import annotations

from typing import Any

import orjson

from mlsteward.api import audit as api_audit
from mlsteward.api import model as api_model
from mlsteward.api import monitor as api_monitor
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import common, decisions, serving

FIELD_MANAGER = "mlsteward-operator-monitor"
CONTAINER = "monitor"
CONFIG_VOLUME = "monitor-config"
CONFIG_DIR = "/etc/mlsteward/monitor"
CONFIG_FILE = "config.json"
METRICS_PORT_NAME = "monitor"


def config_map_name(monitor_name: str) -> str:
    return common.child_name(monitor_name, "monitor")


def build_config_map(spec: api_monitor.MonitorSpec, owner: common.Owner) -> dict[str, Any]:
    """The sidecar's ``--config``: the Monitor spec's window, drift, performance and fairness."""
    wire = spec.to_wire()
    document = {key: wire[key] for key in ("window", "drift", "performance", "fairness") if key in wire}
    labels = {
        common.LABEL_NAME: "mlsteward-monitor",
        common.LABEL_INSTANCE: common.label_value(owner["name"]),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": common.metadata(config_map_name(owner["name"]), owner, labels),
        "data": {CONFIG_FILE: orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()},
    }


def monitor_url(settings: settings_module.Settings) -> str:
    return f"http://$(POD_IP):{settings.monitor_port}"


def build_sidecar_patch(
    target_name: str,
    namespace: str,
    monitor_name: str,
    *,
    digest: str,
    settings: settings_module.Settings,
    artifact_store: api_model.ArtifactStoreSpec | None = None,
    decision_log: api_audit.DecisionLogPolicy | None = None,
) -> dict[str, Any]:
    """The partial apps/v1 Deployment this Monitor's field manager applies to its target.

    ``artifact_store``: the Model's store (default: the PVC). From an S3 store the sidecar
    reads the profile straight from the bucket, credentials from the Model's Secret.
    ``decision_log``: the target Deployment's policy (default: on); with it on, the sidecar
    writes the decision log into the same store, so a PVC is mounted read-write.
    """
    store = artifact_store or api_model.ArtifactStoreSpec()
    policy = decision_log or api_audit.DecisionLogPolicy()
    location = common.store_location(store, settings.store_mount_path)
    store_mounts = (
        []
        if store.s3 is not None
        else [common.store_mount(location, read_only=decisions.read_only_store(policy))]
    )
    command = [
        "mlsteward",
        "monitor",
        "--profile-artifact",
        f"{location}/artifacts/sha256/{digest}",
        "--digest",
        digest,
        "--host",
        "$(POD_IP)",
        "--port",
        str(settings.monitor_port),
        "--config",
        f"{CONFIG_DIR}/{CONFIG_FILE}",
    ]
    sidecar = {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": command,
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOME", "value": "/tmp"},
            *common.store_env(store),
            *decisions.decision_log_env(
                policy, store_location=location, namespace=namespace, deployment=target_name
            ),
        ],
        "ports": [{"name": METRICS_PORT_NAME, "containerPort": settings.monitor_port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": METRICS_PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
        },
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": common.container_security_context(),
        "volumeMounts": [
            *store_mounts,
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            common.tmp_mount(),
        ],
    }
    server_env = {
        "name": serving.SERVER_CONTAINER,
        "env": [{"name": "MLSTEWARD_SERVE_MONITOR_URL", "value": monitor_url(settings)}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": target_name, "namespace": namespace},
        "spec": {
            "template": {
                "metadata": {"annotations": {"mlsteward.io/monitor": monitor_name}},
                "spec": {
                    "containers": [server_env, sidecar],
                    "volumes": [
                        {"name": CONFIG_VOLUME, "configMap": {"name": config_map_name(monitor_name)}}
                    ],
                },
            }
        },
    }


def build_sidecar_removal(target_name: str, namespace: str) -> dict[str, Any]:
    """The empty apply that makes this field manager give up (and so remove) the sidecar."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": target_name, "namespace": namespace},
    }


def build_service_port_patch(
    target_name: str, namespace: str, settings: settings_module.Settings
) -> dict[str, Any]:
    """Expose the sidecar's metrics port on the serving Service (a partial apply, merged by port)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": target_name, "namespace": namespace},
        "spec": {
            "ports": [
                {
                    "name": METRICS_PORT_NAME,
                    "port": settings.monitor_port,
                    "targetPort": METRICS_PORT_NAME,
                    "protocol": "TCP",
                }
            ]
        },
    }


def build_service_port_removal(target_name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": target_name, "namespace": namespace}}
