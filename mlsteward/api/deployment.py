"""The ``Deployment`` resource (mlsteward.io): which model version to serve, and how."""

from __future__ import annotations

from typing import Literal

import pydantic

from mlsteward.api import audit, base


class ModelRef(base.ApiModel):
    """A Model in the same namespace and one of its versions, by number or by alias."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.cel(
                "!(has(self.version) && has(self.alias))",
                "set either version or alias, not both",
                ".version",
            ),
        )
    )

    name: str = pydantic.Field(pattern=base.DNS_LABEL_PATTERN, max_length=63)
    """Name of the Model."""
    version: int | None = pydantic.Field(default=None, ge=1)
    """A pinned version number."""
    alias: Literal["champion", "challenger", "latest"] | None = None
    """Follow an alias instead of a pinned version: champion (default), challenger, or latest
    (the newest promotable version)."""


class Autoscaling(base.ApiModel):
    """A HorizontalPodAutoscaler on CPU utilisation."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.cel(
                "self.minReplicas <= self.maxReplicas",
                "minReplicas must not exceed maxReplicas",
                ".minReplicas",
            ),
        )
    )

    min_replicas: int = pydantic.Field(default=1, ge=1, le=1000)
    """Fewest serving pods."""
    max_replicas: int = pydantic.Field(default=4, ge=1, le=1000)
    """Most serving pods."""
    target_cpu_utilization_percent: int = pydantic.Field(default=70, ge=1, le=100)
    """Average CPU utilisation the autoscaler aims for."""


class CanaryAnalysis(base.ApiModel):
    """Limits the canary must stay within at every step, compared with the stable version."""

    interval: str = pydantic.Field(default="1m", pattern=base.DURATION_PATTERN, max_length=32)
    """How long each step lasts before it is analysed."""
    min_requests: int = pydantic.Field(default=100, ge=0, le=10_000_000)
    """Requests the canary must have answered in a step before a verdict."""
    max_error_rate_increase: float = pydantic.Field(default=0.01, ge=0, le=1)
    """Largest allowed increase of the error rate over the stable version."""
    max_latency_p99_increase_percent: float = pydantic.Field(default=20, ge=0, le=1000)
    """Largest allowed increase of p99 latency, in percent of the stable version's."""
    max_disagreement: float | None = pydantic.Field(default=None, ge=0, le=1)
    """Largest allowed share of rows where canary and stable predictions differ (shadow mode)."""
    max_performance_decrease: float = pydantic.Field(default=0.02, ge=0, le=1_000_000)
    """Largest allowed fall of the canary's labelled accuracy or ROC AUC (or rise of its RMSE or
    MAE) below the stable version's, absolute, read from the Monitor's /summary when the
    Deployment has a Monitor and labels arrive."""
    min_labels: int = pydantic.Field(default=50, ge=1, le=10_000_000)
    """Labelled rows each version needs in the monitor's window before performance is compared
    (fewer: the performance check is skipped and the analysis says so)."""


class Canary(base.ApiModel):
    """A second version served beside the stable one, on a share of the traffic."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.cel(
                "!has(self.steps) || self.steps.all(s, s >= 1 && s <= 100)",
                "every canary step must be a traffic share between 1 and 100",
                ".steps",
            ),
        )
    )

    version: int | None = pydantic.Field(default=None, ge=1)
    """The canary version; the Model's challenger alias when absent."""
    traffic_percent: int = pydantic.Field(default=10, ge=0, le=100)
    """Share of requests (0-100) the canary answers at the first step."""
    mode: Literal["split", "shadow"] = "split"
    """split: traffic steps only; shadow: first a shadow step (both versions score every
    request, the stable one answers, their agreement is analysed), then the traffic steps."""
    steps: list[int] = pydantic.Field(default_factory=list, max_length=10)
    """Traffic shares to step through after the first one (trafficPercent) passes its analysis;
    passing the last step promotes the canary."""
    analysis: CanaryAnalysis = pydantic.Field(default_factory=CanaryAnalysis)
    """Limits checked at every step; a breach rolls the canary back."""


class Approval(base.ApiModel):
    """Human approval before a new version takes traffic."""

    required: bool = False
    """Wait for an approver's explicit approval of the exact version (an Approval object naming
    this Deployment, the version and its artifact digest) before the canary takes traffic."""


class ServingSettings(base.ApiModel):
    """Inference server tuning."""

    max_batch_size: int = pydantic.Field(default=64, ge=1, le=4096)
    """Most rows merged from concurrent requests into one ONNX Runtime call."""
    max_batch_delay_ms: float = pydantic.Field(default=1.0, ge=0, le=1000)
    """Longest a request waits for others to batch with."""
    threads: int | None = pydantic.Field(default=None, ge=1, le=256)
    """ONNX Runtime intra-op threads; by default sized to the container's CPU."""
    explain: bool = False
    """Return per-prediction reason codes (top contributing features) when asked."""


class DeploymentSpec(base.ApiModel):
    """Serve a model version from ONNX Runtime pods."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.cel(
                "!has(self.autoscaling) || !has(self.replicas) || self.replicas == 1",
                "replicas cannot be set together with autoscaling: the autoscaler owns the count",
                ".replicas",
            ),
        )
    )

    model_ref: ModelRef
    """The Model and version to serve."""
    replicas: int | None = pydantic.Field(default=None, ge=0, le=1000)
    """Serving pods when not autoscaled (default 1; 0 scales the Deployment down)."""
    autoscaling: Autoscaling | None = None
    """Scale on CPU instead of a fixed replica count."""
    resources: base.Resources = pydantic.Field(default_factory=base.Resources)
    """Resources of each serving container."""
    canary: Canary | None = None
    """Roll out a second version gradually, with analysis."""
    approval: Approval = pydantic.Field(default_factory=Approval)
    """Human approval before a new version takes traffic."""
    serving: ServingSettings = pydantic.Field(default_factory=ServingSettings)
    """Inference server tuning."""
    decision_log: audit.DecisionLogPolicy = pydantic.Field(default_factory=audit.DecisionLogPolicy)
    """The audit record of every scored request: on by default, inputs off by default."""


RolloutPhase = Literal[
    "WaitingForApproval", "Shadow", "Progressing", "Inconclusive", "Promoted", "RolledBack", "KillSwitch"
]


class RolloutCounters(base.ApiModel):
    """Cumulative counters summed over the serving pods' /metrics at one instant."""

    stable_requests: float = 0
    """Inference requests the stable version answered."""
    stable_errors: float = 0
    """Of those, answered with a 5xx status."""
    canary_requests: float = 0
    """Inference requests the canary answered."""
    canary_errors: float = 0
    """Of those, answered with a 5xx status."""
    shadow_agree: float = 0
    """Rows the shadow canary scored like the stable version."""
    shadow_disagree: float = 0
    """Rows the shadow canary scored differently."""
    stable_latency: dict[str, float] = pydantic.Field(default_factory=dict)
    """Cumulative latency histogram of the stable version (bucket upper bound -> count), when the
    server labels latency by version."""
    canary_latency: dict[str, float] = pydantic.Field(default_factory=dict)
    """Cumulative latency histogram of the canary, as above."""
    pods: int = pydantic.Field(default=0, ge=0)
    """Serving pods that answered the scrape."""


class AnalysisResult(base.ApiModel):
    """The verdict of one canary analysis over a step's interval."""

    verdict: Literal["Passed", "Failed", "Inconclusive"]
    """Passed: next step; Failed: rolled back; Inconclusive: too little traffic, paused."""
    at: str = pydantic.Field(json_schema_extra={"format": "date-time"})
    """When the analysis ran."""
    step: int = pydantic.Field(ge=1)
    """The step analysed (1-based)."""
    message: str = pydantic.Field(default="", max_length=4096)
    """Every measured figure and the limit it was compared with."""
    canary_requests: float | None = None
    """Requests (or shadow rows) the canary answered in the step."""
    canary_error_rate: float | None = None
    """The canary's share of 5xx answers in the step."""
    stable_error_rate: float | None = None
    """The stable version's share of 5xx answers in the step."""
    disagreement: float | None = None
    """Share of shadow rows scored differently (shadow step)."""
    canary_latency_p99_seconds: float | None = None
    """The canary's p99 latency in the step, when measured per version."""
    stable_latency_p99_seconds: float | None = None
    """The stable version's p99 latency in the step, when measured per version."""
    canary_labels: float | None = None
    """Labelled rows of the canary in the monitor's window (all serving pods)."""
    stable_labels: float | None = None
    """Labelled rows of the stable version in the monitor's window (all serving pods)."""
    canary_accuracy: float | None = None
    """The canary's accuracy over its labelled rows."""
    stable_accuracy: float | None = None
    """The stable version's accuracy over its labelled rows."""
    canary_roc_auc: float | None = None
    """The canary's ROC AUC over its labelled rows (binary classification)."""
    stable_roc_auc: float | None = None
    """The stable version's ROC AUC over its labelled rows (binary classification)."""
    canary_rmse: float | None = None
    """The canary's RMSE over its labelled rows (regression)."""
    stable_rmse: float | None = None
    """The stable version's RMSE over its labelled rows (regression)."""
    canary_mae: float | None = None
    """The canary's MAE over its labelled rows (regression)."""
    stable_mae: float | None = None
    """The stable version's MAE over its labelled rows (regression)."""


class RolloutStatus(base.ApiModel):
    """Where the current (or last) canary rollout stands."""

    version: int = pydantic.Field(ge=1)
    """The canary version."""
    digest: str = pydantic.Field(pattern=base.SHA256_PATTERN)
    """Its artifact digest."""
    stable_version: int = pydantic.Field(ge=1)
    """The version it is compared with and falls back to."""
    phase: RolloutPhase
    """WaitingForApproval, Shadow, Progressing, Inconclusive (paused: too little traffic),
    Promoted, RolledBack (analysis failed) or KillSwitch (stopped by mlsteward rollback)."""
    step: int = pydantic.Field(default=0, ge=0)
    """Current step, 1-based; 0 before the first."""
    steps: int = pydantic.Field(default=0, ge=0)
    """Number of steps, the shadow step included."""
    traffic_percent: int = pydantic.Field(default=0, ge=0, le=100)
    """Share of requests the canary answers now (0 in shadow)."""
    mode: Literal["split", "shadow"] = "split"
    """The routing mode of the current step."""
    step_started_at: str | None = pydantic.Field(default=None, json_schema_extra={"format": "date-time"})
    """When the current step (or its current analysis interval) began."""
    baseline: RolloutCounters | None = None
    """The counters when the current step began; the analysis uses the difference."""
    last_analysis: AnalysisResult | None = None
    """The most recent analysis."""
    requested_by: str | None = pydantic.Field(default=None, max_length=253)
    """Who asked for the version (the retrain requester), when known; may not approve it."""
    approved_by: str | None = pydantic.Field(default=None, max_length=253)
    """The approver recorded by the Approval the rollout used."""
    approval: str | None = pydantic.Field(default=None, max_length=253)
    """Name of that Approval."""
    message: str = pydantic.Field(default="", max_length=4096)
    """What the rollout is doing or waiting for, in a sentence."""


class HistoryRecord(base.ApiModel):
    """One entry of the append-only, hash-chained serving history."""

    version: int = pydantic.Field(ge=1)
    """The version that serves from ``at`` on (for rolledBack and killSwitch: the one restored)."""
    digest: str = pydantic.Field(pattern=base.SHA256_PATTERN)
    """Its artifact digest."""
    at: str = pydantic.Field(json_schema_extra={"format": "date-time"})
    """When it happened (RFC 3339)."""
    action: Literal["started", "promoted", "rolledBack", "killSwitch"]
    """started: first version served or a version set by the spec; promoted: a canary passed
    every step; rolledBack: a canary failed its analysis; killSwitch: mlsteward rollback."""
    reason: str = pydantic.Field(default="", max_length=1024)
    """Why, in a sentence."""
    approved_by: str | None = pydantic.Field(
        default=None, max_length=253, json_schema_extra={"nullable": True}
    )
    """The approver of a promoted version, or null."""
    previous_hash: str | None = pydantic.Field(
        default=None, pattern=base.SHA256_PATTERN, json_schema_extra={"nullable": True}
    )
    """The hash of the record before this one (null for the first)."""
    hash: str = pydantic.Field(pattern=base.SHA256_PATTERN)
    """sha256 hex of the canonical JSON (sorted keys, no spaces) of this record without ``hash``:
    editing or removing any earlier record breaks the chain."""


class DeploymentStatus(base.StatusBase):
    """What the operator observed for this Deployment."""

    endpoint: str | None = pydantic.Field(default=None, max_length=2048)
    """Base URL of the Open Inference Protocol endpoint."""
    replicas: int | None = pydantic.Field(default=None, ge=0)
    """Serving pods that exist."""
    ready_replicas: int | None = pydantic.Field(default=None, ge=0)
    """Serving pods that are ready."""
    active_version: int | None = pydantic.Field(default=None, ge=1)
    """The version answering most traffic."""
    canary_version: int | None = pydantic.Field(default=None, ge=1)
    """The canary version, while a rollout is in progress."""
    canary_traffic_percent: int | None = pydantic.Field(default=None, ge=0, le=100)
    """Share of traffic the canary answers now."""
    rollout: RolloutStatus | None = None
    """The current or last canary rollout: step, versions, last analysis, approval."""
    rejected_versions: list[int] = pydantic.Field(default_factory=list, max_length=100)
    """Versions rolled back or stopped here; they are never rolled out again on this Deployment."""
    kill_switch: str | None = pydantic.Field(default=None, max_length=128)
    """The last mlsteward.io/rollback annotation value acted upon."""
    history: list[HistoryRecord] = pydantic.Field(default_factory=list, max_length=1000)
    """Append-only, hash-chained record of which version served from when (mlsteward history)."""
