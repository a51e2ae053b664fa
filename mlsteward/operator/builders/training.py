"""The training Job of one Model version: ``mlsteward train`` with the spec, in a restricted pod."""

from __future__ import annotations

from typing import Any

import orjson

from mlsteward.api import model as api_model
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import common

CONTAINER = "train"
TERMINATION_LOG = "/dev/termination-log"
# The trainer's exit code for bad input (data, spec, policy, digest): retrying cannot help.
EXIT_BAD_INPUT = 2


def job_name(model_name: str, version: int) -> str:
    """The Job of version N is always ``<model>-v<N>``: a restarted operator finds it again."""
    return common.child_name(model_name, f"v{version}")


def build_job(
    spec: api_model.ModelSpec,
    owner: common.Owner,
    version: int,
    *,
    generation: int,
    retrain_token: str | None,
    spec_hash: str,
    settings: settings_module.Settings,
    reuse_digest: str | None = None,
    champion_digest: str | None = None,
) -> dict[str, Any]:
    """The Job that trains ``version`` of the Model ``owner`` from ``spec``.

    ``reuse_digest``: an earlier artifact the Job reuses instead of training if it is still in
    the store and matches (for S3 stores, which the operator cannot read itself).
    ``champion_digest``: the current champion's artifact, in the same store, which the Job
    verifies and scores on this version's holdout (docs/rollout.md §2).
    """
    labels = {
        common.LABEL_NAME: "mlsteward-trainer",
        common.LABEL_INSTANCE: common.label_value(owner["name"]),
        common.LABEL_MODEL: common.label_value(owner["name"]),
        common.LABEL_VERSION: str(version),
    }
    annotations = {common.ANNOTATION_GENERATION: str(generation), common.ANNOTATION_SPEC_HASH: spec_hash}
    if retrain_token is not None:
        annotations[common.ANNOTATION_RETRAIN] = retrain_token
    store_volumes, store_mounts = common.store_volumes(
        spec.artifact_store, settings.store_mount_path, read_only=False
    )
    command = [
        "mlsteward",
        "train",
        "--store",
        common.store_location(spec.artifact_store, settings.store_mount_path),
        "--termination-message-path",
        TERMINATION_LOG,
        "--name",
        owner["name"],
        "--namespace",
        owner["namespace"],
    ]
    if reuse_digest is not None:
        command += ["--reuse-artifact", reuse_digest]
    if champion_digest is not None:
        store = common.store_location(spec.artifact_store, settings.store_mount_path)
        command += ["--champion-artifact", store, "--champion-digest", champion_digest]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": common.pod_security_context(),
        "containers": [
            {
                "name": CONTAINER,
                "image": settings.image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": command,
                "env": [
                    {"name": "MLSTEWARD_MODEL_SPEC", "value": orjson.dumps(spec.to_wire()).decode()},
                    {"name": "HOME", "value": "/tmp"},
                    *common.store_env(spec.artifact_store),
                ],
                "resources": common.resources(spec.resources),
                "securityContext": common.container_security_context(),
                "terminationMessagePath": TERMINATION_LOG,
                "terminationMessagePolicy": "File",
                "volumeMounts": [*store_mounts, common.tmp_mount()],
            }
        ],
        "volumes": [*store_volumes, common.tmp_volume()],
    }
    if settings.training_node_selector:
        pod_spec["nodeSelector"] = dict(settings.training_node_selector)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": common.metadata(job_name(owner["name"], version), owner, labels, annotations),
        "spec": {
            "backoffLimit": settings.training_backoff_limit,
            "activeDeadlineSeconds": spec.training_deadline_seconds,
            "ttlSecondsAfterFinished": settings.training_ttl_seconds,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [EXIT_BAD_INPUT],
                        },
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
