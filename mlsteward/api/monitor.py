"""The ``Monitor`` resource: watch a Deployment for drift, decay and unfairness, and act."""

from __future__ import annotations

from typing import Literal

import pydantic

from mlsteward.api import base

NumericTest = Literal["wasserstein", "psi", "ks", "jensen_shannon"]
CategoricalTest = Literal["jensen_shannon", "psi", "chi_square"]


class DeploymentRef(base.ApiModel):
    """A mlsteward Deployment in the same namespace."""

    name: str = pydantic.Field(pattern=base.DNS_LABEL_PATTERN, max_length=63)
    """Name of the mlsteward.io Deployment to watch."""


class Window(base.ApiModel):
    """The span of recent traffic compared with the reference."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.cel(
                "!has(self.minSamples) || !has(self.size) || self.minSamples <= self.size",
                "minSamples cannot exceed the window size: no window could ever reach a verdict",
                ".minSamples",
            ),
        )
    )

    kind: Literal["sliding", "tumbling"] = "tumbling"
    """tumbling: consecutive disjoint windows; sliding: the most recent rows."""
    size: int = pydantic.Field(default=10_000, ge=1, le=100_000_000)
    """Rows per window."""
    duration: str | None = pydantic.Field(default=None, pattern=base.DURATION_PATTERN, max_length=32)
    """Also close a window after this long, whatever its row count."""
    min_samples: int = pydantic.Field(default=1000, ge=1, le=100_000_000)
    """Rows a window needs before any verdict; fewer is 'insufficient data', never a pass."""


class FeatureOverride(base.ApiModel):
    """A different test or threshold for one feature."""

    name: str = pydantic.Field(pattern=base.COLUMN_PATTERN, max_length=128)
    """Feature name."""
    test: Literal["wasserstein", "psi", "ks", "jensen_shannon", "chi_square"] | None = None
    """Test for this feature."""
    threshold: float | None = pydantic.Field(default=None, gt=0, le=1)
    """Score at or above which the feature drifts."""


class DriftPolicy(base.ApiModel):
    """How drift is measured and decided, per column type, by effect size."""

    numeric_test: NumericTest = "wasserstein"
    """Test for numeric features (Wasserstein distance normalised by the reference's standard deviation)."""
    numeric_threshold: float = pydantic.Field(default=0.1, gt=0, le=1)
    """Score at or above which a numeric feature drifts."""
    categorical_test: CategoricalTest = "jensen_shannon"
    """Test for categorical features."""
    categorical_threshold: float = pydantic.Field(default=0.1, gt=0, le=1)
    """Score at or above which a categorical feature drifts."""
    features: list[FeatureOverride] = pydantic.Field(default_factory=list, max_length=512)
    """Per-feature overrides."""
    drifting_share: float = pydantic.Field(default=0.5, gt=0, le=1)
    """The model drifts when at least this share of features drift (or its predictions do)."""
    consecutive_windows: int = pydantic.Field(default=2, ge=1, le=100)
    """Windows in a row that must breach before the Monitor reports Drifting."""


class PerformancePolicy(base.ApiModel):
    """Limits on quality measured from delayed ground-truth labels."""

    min_accuracy: float | None = pydantic.Field(default=None, ge=0, le=1)
    """Lowest acceptable accuracy over the window (classification)."""
    min_roc_auc: float | None = pydantic.Field(default=None, ge=0, le=1)
    """Lowest acceptable ROC AUC over the window (classification)."""
    max_rmse: float | None = pydantic.Field(default=None, gt=0)
    """Highest acceptable RMSE over the window (regression)."""
    label_timeout: str = pydantic.Field(default="24h", pattern=base.DURATION_PATTERN, max_length=32)
    """How long a prediction waits for its label before it is dropped from the join."""


class FairnessPolicy(base.ApiModel):
    """Fairness over the window for a sensitive attribute sent as request metadata."""

    attribute: str = pydantic.Field(pattern=base.COLUMN_PATTERN, max_length=128)
    """Metadata field holding the group (never a model input)."""
    max_demographic_parity_difference: float = pydantic.Field(default=0.1, ge=0, le=1)
    """Largest allowed gap in selection rate between groups."""


class Actions(base.ApiModel):
    """What the Monitor does when a limit is breached."""

    alert: bool = True
    """Raise alerts (conditions, Events and the Prometheus alert rules)."""
    retrain: bool = False
    """Ask the Model for a new version (its mlsteward.io/retrain annotation) when drift or
    degradation lasts drift.consecutiveWindows evaluations in a row, each with enough samples."""
    require_approval: bool = False
    """New versions of the watched Deployment wait for an Approval before taking traffic (as if
    the Deployment's approval.required were set)."""
    cooldown: str = pydantic.Field(default="6h", pattern=base.DURATION_PATTERN, max_length=32)
    """Minimum time between two retraining requests."""
    max_retrains_per_day: int = pydantic.Field(default=2, ge=0, le=48)
    """Cap on retraining requests per day."""


class MonitorSpec(base.ApiModel):
    """Watch a Deployment: drift, performance, fairness, and what to do about them."""

    deployment_ref: DeploymentRef
    """The mlsteward Deployment whose pods get the drift-monitor sidecar."""
    window: Window = pydantic.Field(default_factory=Window)
    """The span of recent traffic compared with the reference."""
    drift: DriftPolicy = pydantic.Field(default_factory=DriftPolicy)
    """Drift tests and thresholds."""
    performance: PerformancePolicy | None = None
    """Quality limits from delayed labels."""
    fairness: list[FairnessPolicy] = pydantic.Field(default_factory=list, max_length=16)
    """Fairness limits per sensitive attribute."""
    actions: Actions = pydantic.Field(default_factory=Actions)
    """Alerting and retraining."""
    evaluation_interval_seconds: int = pydantic.Field(default=60, ge=5, le=86400)
    """How often the operator reads the sidecars and updates status."""
    prometheus_url: str | None = pydantic.Field(default=None, pattern=r"^https?://\S+$", max_length=2048)
    """Read the summed bucket counters from this Prometheus instead of the pods directly."""


class FeatureDrift(base.ApiModel):
    """The latest drift score of one feature (or of the predictions)."""

    name: str = pydantic.Field(max_length=128)
    """Feature name, or `prediction`."""
    test: str = pydantic.Field(max_length=32)
    """The test that produced the score."""
    score: float
    """Effect size: the higher, the further from the reference."""
    threshold: float
    """The threshold the score was compared with."""
    drifting: bool
    """Score at or above the threshold with enough samples."""


class MonitorStatus(base.StatusBase):
    """What the operator observed for this Monitor."""

    last_evaluation_time: str | None = pydantic.Field(default=None, json_schema_extra={"format": "date-time"})
    """When the sidecars were last read."""
    samples: int | None = pydantic.Field(default=None, ge=0)
    """Rows in the current window, summed over the serving pods."""
    drifting_features: int | None = pydantic.Field(default=None, ge=0)
    """How many features drift now."""
    consecutive_breaches: int | None = pydantic.Field(default=None, ge=0)
    """Windows in a row that breached."""
    features: list[FeatureDrift] = pydantic.Field(default_factory=list, max_length=520)
    """Per-feature scores, worst first."""
    breaching_evaluations: int | None = pydantic.Field(default=None, ge=0)
    """Evaluations in a row, each with enough samples, that found drift or degradation."""
    last_retrain_request_time: str | None = pydantic.Field(
        default=None, json_schema_extra={"format": "date-time"}
    )
    """When this Monitor last asked its Model for a new version."""
    retrain_requests_today: int | None = pydantic.Field(default=None, ge=0)
    """Retraining requests made on the UTC day of the last one."""
