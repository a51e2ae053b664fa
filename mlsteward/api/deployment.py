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
    """split: the canary answers its share; shadow: both score every request, the stable answers."""
    steps: list[int] = pydantic.Field(default_factory=list, max_length=10)
    """Traffic shares to step through after analysis passes, ending in promotion."""
    analysis: CanaryAnalysis = pydantic.Field(default_factory=CanaryAnalysis)
    """Limits checked at every step; a breach rolls the canary back."""


class Approval(base.ApiModel):
    """Human approval before a new version takes traffic."""

    required: bool = False
    """Wait for an approver's explicit approval of the exact version."""


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
