"""The three kinds: names, spec and status models, and how `kubectl get` shows them."""

from __future__ import annotations

import dataclasses

import pydantic

from mlsteward.api import approval, deployment, model, monitor


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0


@dataclasses.dataclass(frozen=True)
class Kind:
    """One custom resource kind of the mlsteward.io group."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    description: str
    spec: type[pydantic.BaseModel]
    status: type[pydantic.BaseModel]
    columns: tuple[PrinterColumn, ...]


def _ready_column() -> PrinterColumn:
    return PrinterColumn(
        "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Ready condition"
    )


def _age_column() -> PrinterColumn:
    return PrinterColumn("Age", ".metadata.creationTimestamp", "date")


MODEL = Kind(
    kind="Model",
    plural="models",
    singular="model",
    short_names=("mlmodel", "mlm"),
    description=(
        "A machine-learning model trained reproducibly from a declared dataset, checked against "
        "quality, fairness and protected-attribute gates, and stored as a verified ONNX artifact."
    ),
    spec=model.ModelSpec,
    status=model.ModelStatus,
    columns=(
        PrinterColumn("Task", ".spec.task"),
        PrinterColumn("Estimator", ".spec.estimator.className"),
        PrinterColumn("Latest", ".status.latestVersion", "integer", "Newest version started"),
        PrinterColumn("Champion", ".status.aliases.champion", "integer", "Version serving production"),
        PrinterColumn("Challenger", ".status.aliases.challenger", "integer", "Candidate version"),
        PrinterColumn("Phase", ".status.phase"),
        _ready_column(),
        _age_column(),
    ),
)

DEPLOYMENT = Kind(
    kind="Deployment",
    plural="deployments",
    singular="deployment",
    short_names=("mldeploy", "mld"),
    description=(
        "Serves a Model version from ONNX Runtime pods over the Open Inference Protocol, with "
        "optional autoscaling and canary rollout. Not to be confused with apps/v1 Deployment: "
        "use the short name mldeploy or the full name deployments.mlsteward.io with kubectl."
    ),
    spec=deployment.DeploymentSpec,
    status=deployment.DeploymentStatus,
    columns=(
        PrinterColumn("Model", ".spec.modelRef.name"),
        PrinterColumn("Active", ".status.activeVersion", "integer", "Version answering most traffic"),
        PrinterColumn("Canary", ".status.canaryVersion", "integer"),
        PrinterColumn("Traffic", ".status.canaryTrafficPercent", "integer", "Canary share in percent"),
        PrinterColumn("Rollout", ".status.rollout.phase", description="Canary rollout phase"),
        PrinterColumn("Step", ".status.rollout.step", "integer", "Current canary step", priority=1),
        PrinterColumn("Analysis", ".status.rollout.lastAnalysis.verdict", description="Last canary analysis"),
        PrinterColumn("Replicas", ".status.readyReplicas", "integer", "Ready serving pods"),
        _ready_column(),
        PrinterColumn("Endpoint", ".status.endpoint", priority=1),
        _age_column(),
    ),
)

MONITOR = Kind(
    kind="Monitor",
    plural="monitors",
    singular="monitor",
    short_names=("mlmonitor", "mlmon"),
    description=(
        "Watches a mlsteward Deployment through drift-monitor sidecars: per-feature drift, "
        "performance from delayed labels and fairness, with alerts and retraining."
    ),
    spec=monitor.MonitorSpec,
    status=monitor.MonitorStatus,
    columns=(
        PrinterColumn("Deployment", ".spec.deploymentRef.name"),
        PrinterColumn("Samples", ".status.samples", "integer", "Rows in the current window"),
        PrinterColumn("Drifting", ".status.driftingFeatures", "integer", "Features drifting now"),
        PrinterColumn("Phase", ".status.phase"),
        _ready_column(),
        _age_column(),
    ),
)

APPROVAL = Kind(
    kind="Approval",
    plural="approvals",
    singular="approval",
    short_names=("mlapproval",),
    description=(
        "An approver's consent that one model version (by artifact digest) may take traffic on one "
        "mlsteward Deployment. Immutable; the API server checks that approvedBy is the creating user."
    ),
    spec=approval.ApprovalSpec,
    status=approval.ApprovalStatus,
    columns=(
        PrinterColumn("Deployment", ".spec.deployment"),
        PrinterColumn("Version", ".spec.version", "integer"),
        PrinterColumn("ApprovedBy", ".spec.approvedBy"),
        _age_column(),
    ),
)

KINDS: tuple[Kind, ...] = (MODEL, DEPLOYMENT, MONITOR, APPROVAL)
