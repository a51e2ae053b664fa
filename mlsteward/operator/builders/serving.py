"""The serving children of a mlsteward Deployment: routing ConfigMap, apps/v1 Deployment,
Service and optional HorizontalPodAutoscaler.

The pod template never names a model version: the server hot-reloads the routing ConfigMap
(docs/contracts.md §5), so a new version changes the ConfigMap and no pod restarts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from mlsteward.api import deployment as api_deployment
from mlsteward.api import model as api_model
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import common

SERVER_CONTAINER = "server"
ROUTING_VOLUME = "routing"
ROUTING_DIR = "/etc/mlsteward/routing"
ROUTING_FILE = "routing.json"
HTTP_PORT_NAME = "http"


@dataclasses.dataclass(frozen=True)
class Target:
    """A resolved model version: number and artifact digest."""

    version: int
    digest: str


@dataclasses.dataclass(frozen=True)
class Routing:
    """What the server serves: the champion and an optional challenger with its share."""

    model: str
    champion: Target
    challenger: Target | None = None
    share: int = 0
    mode: str = "split"

    def document(self) -> dict[str, Any]:
        challenger = None
        if self.challenger is not None:
            challenger = {
                "version": str(self.challenger.version),
                "digest": self.challenger.digest,
                "share": self.share,
                "mode": self.mode,
            }
        return {
            "model": self.model,
            "champion": {"version": str(self.champion.version), "digest": self.champion.digest},
            "challenger": challenger,
        }


def routing_config_map_name(name: str) -> str:
    return common.child_name(name, "routing")


def pod_labels(owner: common.Owner) -> dict[str, str]:
    """Labels that select this Deployment's serving pods (Service and Deployment selector)."""
    return {
        common.LABEL_NAME: "mlsteward-server",
        common.LABEL_INSTANCE: common.label_value(owner["name"]),
        common.LABEL_DEPLOYMENT: common.label_value(owner["name"]),
    }


def build_routing_config_map(routing: Routing, owner: common.Owner) -> dict[str, Any]:
    data = orjson.dumps(routing.document(), option=orjson.OPT_SORT_KEYS).decode()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": common.metadata(routing_config_map_name(owner["name"]), owner, pod_labels(owner)),
        "data": {ROUTING_FILE: data},
    }


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": HTTP_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def build_deployment(
    spec: api_deployment.DeploymentSpec,
    owner: common.Owner,
    *,
    claim_name: str,
    settings: settings_module.Settings,
    artifact_store: api_model.ArtifactStoreSpec | None = None,
) -> dict[str, Any]:
    """The apps/v1 Deployment of ``mlsteward serve`` pods (replicas left to the HPA when autoscaled).

    ``artifact_store`` is the Model's store; without it, the PVC ``claim_name``. From an S3
    store each pod downloads an artifact once, at load, into an emptyDir cache.
    """
    labels = pod_labels(owner)
    store = artifact_store or api_model.ArtifactStoreSpec(claim_name=claim_name)
    # The volume stays writable for the monitor sidecar's decision log; the server mounts it read-only.
    store_volumes, store_mounts = common.store_volumes(
        store, settings.store_mount_path, read_only=True, writable_volume=True
    )
    command = [
        "mlsteward",
        "serve",
        "--routing",
        f"{ROUTING_DIR}/{ROUTING_FILE}",
        "--store",
        common.store_location(store, settings.store_mount_path),
        "--host",
        "$(POD_IP)",
        "--port",
        str(settings.server_port),
    ]
    if store.s3 is not None:
        command += ["--cache-dir", common.CACHE_DIR]
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MLSTEWARD_SERVE_MAX_BATCH_SIZE", "value": str(spec.serving.max_batch_size)},
        {"name": "MLSTEWARD_SERVE_MAX_BATCH_DELAY_MS", "value": str(spec.serving.max_batch_delay_ms)},
        {"name": "HOME", "value": "/tmp"},
        *common.store_env(store),
    ]
    # ONNX Runtime intra-op threads; 0 asks the server to size them to the pod's CPU.
    threads = 0 if spec.serving.threads is None else spec.serving.threads
    env.append({"name": "MLSTEWARD_SERVE_INTRA_OP_THREADS", "value": str(threads)})
    container = {
        "name": SERVER_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": command,
        "env": env,
        "ports": [{"name": HTTP_PORT_NAME, "containerPort": settings.server_port, "protocol": "TCP"}],
        "readinessProbe": _probe("/v2/health/ready", 5, 3),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "startupProbe": _probe("/v2/health/live", 2, 60),
        "resources": common.resources(spec.resources),
        "securityContext": common.container_security_context(),
        "volumeMounts": [
            *store_mounts,
            {"name": ROUTING_VOLUME, "mountPath": ROUTING_DIR, "readOnly": True},
            common.tmp_mount(),
        ],
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": common.pod_security_context(),
                "containers": [container],
                "volumes": [
                    *store_volumes,
                    {
                        "name": ROUTING_VOLUME,
                        "configMap": {"name": routing_config_map_name(owner["name"])},
                    },
                    common.tmp_volume(),
                ],
            },
        },
    }
    if spec.autoscaling is None:
        deployment_spec["replicas"] = 1 if spec.replicas is None else spec.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(owner["name"], owner, labels),
        "spec": deployment_spec,
    }


def build_service(owner: common.Owner, settings: settings_module.Settings) -> dict[str, Any]:
    labels = pod_labels(owner)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(owner["name"], owner, labels),
        "spec": {
            "selector": labels,
            "ports": [
                {
                    "name": HTTP_PORT_NAME,
                    "port": settings.server_port,
                    "targetPort": HTTP_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_autoscaler(autoscaling: api_deployment.Autoscaling, owner: common.Owner) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": common.metadata(owner["name"], owner, pod_labels(owner)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner["name"]},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": autoscaling.target_cpu_utilization_percent,
                        },
                    },
                }
            ],
        },
    }


def endpoint(owner: common.Owner, settings: settings_module.Settings) -> str:
    return f"http://{owner['name']}.{owner['namespace']}.svc.{settings.cluster_domain}:{settings.server_port}"
