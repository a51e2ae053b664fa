"""The ``Model`` resource: what to learn from, how, and under which gates."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import orjson
import pydantic

from mlsteward.api import base, policy

CLASSIFIERS = (
    "LogisticRegression",
    "RandomForestClassifier",
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
)
REGRESSORS = (
    "LinearRegression",
    "Ridge",
    "RandomForestRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
)
EstimatorClass = Literal[
    "LogisticRegression",
    "RandomForestClassifier",
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
    "LinearRegression",
    "Ridge",
    "RandomForestRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
]
# RFC 1123 subdomain: the names of Secrets.
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
Column = Annotated[str, pydantic.StringConstraints(pattern=base.COLUMN_PATTERN, max_length=128)]


class DatasetSpec(base.ApiModel):
    """Where the training data is and what its columns mean."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.cel(
                "!has(self.sensitive) || self.features.all(f, !(f in self.sensitive))",
                "a column listed in features is also listed in sensitive: sensitive columns may "
                "never be model inputs",
                ".features",
            ),
            base.cel(
                "!(self.target in self.features)",
                "the target column may not also be a feature",
                ".target",
            ),
            base.cel(
                "!has(self.categorical) || self.categorical.all(c, c in self.features)",
                "every categorical column must also be listed in features",
                ".categorical",
            ),
            base.cel(
                "!has(self.sensitive) || !(self.target in self.sensitive)",
                "the target column may not be a sensitive column",
                ".sensitive",
            ),
        )
    )

    uri: str = pydantic.Field(min_length=1, max_length=2048, pattern=r"^(/|file://|https?://|s3://)\S+$")
    """Dataset location: an absolute path (for example a mounted PVC), file://, http(s):// or s3://."""
    format: Literal["csv", "parquet"] | None = None
    """File format; inferred from the URI's suffix when absent."""
    sha256: str | None = pydantic.Field(default=None, pattern=base.SHA256_PATTERN)
    """Pinned sha256 of the dataset file; training fails before reading when it differs.
    Only pinned datasets are eligible for the training cache."""
    target: str = pydantic.Field(pattern=base.COLUMN_PATTERN, max_length=128)
    """The column to predict."""
    features: list[Column] = pydantic.Field(min_length=1, max_length=512)
    """Columns the model may use as inputs, in this order."""
    categorical: list[Column] = pydantic.Field(default_factory=list, max_length=512)
    """Features to one-hot encode; every other feature is numeric."""
    sensitive: list[Column] = pydantic.Field(default_factory=list, max_length=64)
    """Columns never used as inputs but kept to measure fairness and proxy leakage."""


class EstimatorSpec(base.ApiModel):
    """The scikit-learn estimator to fit, from an allow-list."""

    class_name: EstimatorClass
    """Estimator class name (allow-listed scikit-learn estimators only)."""
    params: dict[str, Any] = pydantic.Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """Constructor parameters (scalars only), checked against the class by the trainer."""
    seed: int = pydantic.Field(default=0, ge=0, le=2**31 - 1)
    """Seed for the split and the estimator's randomness: same spec and data, same model."""


class SplitSpec(base.ApiModel):
    """How the holdout set is drawn."""

    test_fraction: float = pydantic.Field(default=0.2, ge=0.05, le=0.5)
    """Share of rows held out for metrics, parity and fairness (stratified for classification)."""


class QualityGates(base.ApiModel):
    """Holdout metric limits a version must meet to be promotable. Unset limits are not checked."""

    min_accuracy: float | None = pydantic.Field(default=None, ge=0, le=1)
    """Minimum accuracy (classification)."""
    min_roc_auc: float | None = pydantic.Field(default=None, ge=0, le=1)
    """Minimum ROC AUC (classification; one-vs-rest macro for multiclass)."""
    min_f1: float | None = pydantic.Field(default=None, ge=0, le=1)
    """Minimum F1 (classification; macro for multiclass)."""
    max_log_loss: float | None = pydantic.Field(default=None, gt=0)
    """Maximum log loss (classification)."""
    max_rmse: float | None = pydantic.Field(default=None, gt=0)
    """Maximum root mean squared error (regression)."""
    max_mae: float | None = pydantic.Field(default=None, gt=0)
    """Maximum mean absolute error (regression)."""
    min_r2: float | None = pydantic.Field(default=None, le=1)
    """Minimum coefficient of determination (regression)."""


class FairnessGates(base.ApiModel):
    """Group-fairness limits over every sensitive column, measured on the holdout."""

    max_demographic_parity_difference: float | None = pydantic.Field(default=None, ge=0, le=1)
    """Largest allowed gap in selection rate between any two groups."""
    min_demographic_parity_ratio: float | None = pydantic.Field(default=None, ge=0, le=1)
    """Smallest allowed ratio of the lowest to the highest group selection rate (0.8: four-fifths rule)."""
    max_equalized_odds_difference: float | None = pydantic.Field(default=None, ge=0, le=1)
    """Largest allowed gap in true- or false-positive rate between groups."""
    min_group_size: int = pydantic.Field(default=30, ge=1, le=1_000_000)
    """Groups smaller than this in the holdout make the result inconclusive, not passed."""


class PolicyException(base.ApiModel):
    """An approved exception allowing one protected attribute as a model input."""

    attribute: str = pydantic.Field(pattern=base.COLUMN_PATTERN, max_length=128)
    """The feature the exception allows."""
    approval_ref: str = pydantic.Field(pattern=base.DNS_LABEL_PATTERN, max_length=63)
    """Name of the approval record granted by a policy administrator."""
    justification: str = pydantic.Field(min_length=10, max_length=2048)
    """Why the attribute is needed (for example Regulation B's exception for age in an
    empirically derived, demonstrably and statistically sound credit scoring system)."""


class ProtectedAttributePolicy(base.ApiModel):
    """Which columns may never be model inputs, and proxy detection for sensitive columns."""

    preset: Literal["us-regulation-b", "none"] = "us-regulation-b"
    """Built-in list: US Regulation B's protected classes (race, color, religion, national
    origin, sex, marital status, age, public assistance) with common synonyms."""
    additional: list[Column] = pydantic.Field(default_factory=list, max_length=128)
    """Further column names treated as protected."""
    exceptions: list[PolicyException] = pydantic.Field(default_factory=list, max_length=16)
    """Approved exceptions, each allowing one protected attribute as an input."""
    max_proxy_roc_auc: float = pydantic.Field(default=0.8, ge=0.5, le=1)
    """A sensitive column that the features predict with a ROC AUC above this is flagged as proxied."""


class ParityLimits(base.ApiModel):
    """How closely the ONNX model must agree with the fitted scikit-learn pipeline on the parity
    sample: a seeded, class-stratified sample of up to 50,000 holdout rows (docs/training.md)."""

    min_label_agreement: float = pydantic.Field(default=0.999, ge=0, le=1)
    """Minimum share of parity-sample rows with the same predicted label (classification)."""
    epsilon: float = pydantic.Field(default=1e-4, gt=0, le=1)
    """A probability or prediction difference above this counts as a differing row."""
    max_share_above_epsilon: float = pydantic.Field(default=0.01, ge=0, le=1)
    """Maximum share of parity-sample rows differing by more than epsilon."""
    max_abs_difference: float = pydantic.Field(default=0.1, gt=0)
    """Maximum difference on any single row of the parity sample."""


class SecretRef(base.ApiModel):
    """A Secret in the Model's namespace."""

    name: str = pydantic.Field(pattern=_DNS_SUBDOMAIN, max_length=253)
    """Name of the Secret."""


class S3StoreSpec(base.ApiModel):
    """An S3-compatible bucket (AWS S3, MinIO, Ceph RGW) holding the content-addressed artifacts."""

    bucket: str = pydantic.Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", max_length=63)
    """Bucket name."""
    prefix: str = pydantic.Field(default="", pattern=r"^([^/\x00-\x1f][^\x00-\x1f]*)?$", max_length=512)
    """Key prefix under which artifacts are stored (no leading slash); empty for the bucket root."""
    endpoint: str | None = pydantic.Field(
        default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$", max_length=2048
    )
    """Endpoint URL of an S3-compatible server, e.g. http://minio.storage:9000; unset for AWS S3."""
    region: str = pydantic.Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,64}$", max_length=64)
    """Region of the bucket."""
    path_style: bool | None = None
    """Path-style addressing (bucket in the path, not the host name); unset means path-style
    when an endpoint is given and virtual-hosted for AWS S3."""
    credentials_secret_ref: SecretRef
    """Secret holding AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, passed to training and serving
    pods as environment variables from the Secret; the operator itself never reads it."""


class ArtifactStoreSpec(base.ApiModel):
    """Where artifacts are written: a PersistentVolumeClaim mounted into Jobs and serving pods,
    or an S3-compatible bucket when ``s3`` is set."""

    claim_name: str = pydantic.Field(
        default="mlsteward-artifacts", pattern=base.DNS_LABEL_PATTERN, max_length=63
    )
    """PersistentVolumeClaim holding the content-addressed artifact store (unused when s3 is set)."""
    s3: S3StoreSpec | None = None
    """An S3-compatible bucket instead of the PersistentVolumeClaim."""


class ChallengerGates(base.ApiModel):
    """How much worse than the champion a new version may be, metric by metric, on the holdout."""

    max_metric_decrease: float = pydantic.Field(default=0.01, ge=0, le=1)
    """Largest allowed drop of a higher-is-better metric (accuracy, roc_auc, f1, r2, ...), and
    largest allowed relative rise of a lower-is-better one (rmse, mae, log_loss)."""
    max_fairness_regression: float = pydantic.Field(default=0.02, ge=0, le=1)
    """Largest allowed rise of a per-group fairness gap (metrics named fairness.<column>.<gap>)."""


class RetrainingPolicy(base.ApiModel):
    """When new versions are trained without a spec change."""

    schedule: str | None = pydantic.Field(default=None, max_length=128, pattern=r"^(\S+\s+){4}\S+$")
    """Cron schedule (five fields) for periodic retraining."""
    on_drift: bool = True
    """Accept retraining requests from Monitors that watch this model."""
    cooldown: str = pydantic.Field(default="6h", pattern=base.DURATION_PATTERN, max_length=32)
    """Minimum time between two retraining runs."""
    max_per_day: int = pydantic.Field(default=4, ge=0, le=48)
    """Cap on retraining runs per day; 0 disables retraining."""
    challenger_gates: ChallengerGates = pydantic.Field(default_factory=ChallengerGates)
    """Relative gates a new version must pass against the champion to become the challenger."""


DocumentationField = Literal["intendedUse", "owners", "limitations"]


class ModelCardSpec(base.ApiModel):
    """Human context for the model card and the documentation bundle."""

    intended_use: str = pydantic.Field(default="", max_length=4096)
    """What the model is for and who uses its outputs."""
    owners: list[str] = pydantic.Field(default_factory=list, max_length=16)
    """Accountable people or teams."""
    limitations: list[str] = pydantic.Field(default_factory=list, max_length=32)
    """Known limits and out-of-scope uses."""
    required: list[DocumentationField] = pydantic.Field(default_factory=list, max_length=3)
    """Fields a person must fill in: while any of them is empty, no version of this Model may
    become champion or challenger (the version records name the missing fields)."""

    def missing_required(self) -> list[str]:
        """The required fields that are empty, as ``card.<field>`` in wire spelling."""
        filled = {
            "intendedUse": bool(self.intended_use.strip()),
            "owners": any(o.strip() for o in self.owners),
            "limitations": any(item.strip() for item in self.limitations),
        }
        return [f"card.{name}" for name in sorted(set(self.required)) if not filled[name]]


FeatureType = Literal["number", "integer", "string", "boolean"]


class FeatureColumn(base.ApiModel):
    """One column of a feature schema: its name, type and allowed values."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.cel(
                "!has(self.minimum) || !has(self.maximum) || self.minimum <= self.maximum",
                "minimum may not exceed maximum",
                ".minimum",
            ),
        )
    )

    name: Column
    """The column's name in the dataset."""
    type: FeatureType
    """number (any real), integer (whole numbers), string (text) or boolean."""
    allowed_values: list[Annotated[str, pydantic.StringConstraints(max_length=256)]] | None = pydantic.Field(
        default=None, max_length=1024
    )
    """The only values allowed (compared as text: 1 and "1" are the same); absent: any value."""
    minimum: float | None = None
    """Smallest allowed value (number and integer columns)."""
    maximum: float | None = None
    """Largest allowed value (number and integer columns)."""
    nullable: bool = True
    """Whether missing values are allowed."""


class ConfigMapSchemaRef(base.ApiModel):
    """A shared feature schema kept in a ConfigMap of the Model's namespace."""

    name: str = pydantic.Field(pattern=base.DNS_LABEL_PATTERN, max_length=63)
    """The ConfigMap's name."""
    key: str = pydantic.Field(default="schema.yaml", max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """The key holding the schema (YAML or JSON with version and columns)."""


class FeatureSchemaSpec(base.ApiModel):
    """A versioned declaration of the data's columns, inline or shared through a ConfigMap.

    Training fails (DataInvalid, naming the column) when the data does not match it, and its
    digest is recorded in the artifact's lineage."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.cel(
                "has(self.columns) || has(self.configMapRef)",
                "set schema.columns (inline) or schema.configMapRef (shared)",
                ".columns",
            ),
            base.cel(
                "!has(self.columns) || has(self.version)",
                "an inline schema needs a version",
                ".version",
            ),
        )
    )

    version: str | None = pydantic.Field(default=None, min_length=1, max_length=64)
    """The schema's version, recorded in the lineage with its digest."""
    columns: list[FeatureColumn] | None = pydantic.Field(default=None, min_length=1, max_length=1024)
    """The declared columns: every target, feature and sensitive column must be among them."""
    config_map_ref: ConfigMapSchemaRef | None = None
    """A shared schema; the operator copies its version and columns in before training (both then
    set: the columns are the resolved schema, the reference says where it came from)."""


_CLASSIFIER_LIST = ", ".join(f"'{c}'" for c in CLASSIFIERS)
_REGRESSOR_LIST = ", ".join(f"'{c}'" for c in REGRESSORS)
_PROTECTED = policy.protected_name_regex()


class ModelSpec(base.ApiModel):
    """What to learn, from which data, with which estimator, under which gates and policy."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.cel(
                f"self.task != 'classification' || self.estimator.className in [{_CLASSIFIER_LIST}]",
                "the estimator is not a classifier but task is classification",
                ".estimator.className",
            ),
            base.cel(
                f"self.task != 'regression' || self.estimator.className in [{_REGRESSOR_LIST}]",
                "the estimator is not a regressor but task is regression",
                ".estimator.className",
            ),
            base.cel(
                "(has(self.protectedAttributes) && has(self.protectedAttributes.preset) && "
                "self.protectedAttributes.preset == 'none') || "
                f"self.dataset.features.all(f, !f.lowerAscii().matches('{_PROTECTED}') || "
                "(has(self.protectedAttributes) && has(self.protectedAttributes.exceptions) && "
                "self.protectedAttributes.exceptions.exists(e, e.attribute == f)))",
                "a feature is a protected attribute (US Regulation B: race, color, religion, national "
                "origin, sex, marital status, age, public assistance, or a synonym) and no approved "
                "exception in protectedAttributes.exceptions allows it",
                ".dataset.features",
            ),
            base.cel(
                "!has(self.protectedAttributes) || !has(self.protectedAttributes.additional) || "
                "self.dataset.features.all(f, !(f in self.protectedAttributes.additional) || "
                "(has(self.protectedAttributes.exceptions) && "
                "self.protectedAttributes.exceptions.exists(e, e.attribute == f)))",
                "a feature is listed in protectedAttributes.additional and no approved exception allows it",
                ".dataset.features",
            ),
        )
    )

    task: Literal["classification", "regression"]
    """Classification (binary or multiclass) or regression."""
    dataset: DatasetSpec
    """Training data and the meaning of its columns."""
    estimator: EstimatorSpec
    """The allow-listed scikit-learn estimator, its parameters and seed."""
    split: SplitSpec = pydantic.Field(default_factory=SplitSpec)
    """Holdout split."""
    quality_gates: QualityGates = pydantic.Field(default_factory=QualityGates)
    """Metric limits a version must meet to be promotable."""
    fairness_gates: FairnessGates = pydantic.Field(default_factory=FairnessGates)
    """Group-fairness limits over the sensitive columns."""
    protected_attributes: ProtectedAttributePolicy = pydantic.Field(default_factory=ProtectedAttributePolicy)
    """Which columns may never be inputs, approved exceptions, and proxy detection."""
    parity: ParityLimits = pydantic.Field(default_factory=ParityLimits)
    """Agreement required between the ONNX model and the scikit-learn pipeline."""
    resources: base.Resources = pydantic.Field(default_factory=base.Resources)
    """Resources of the training Job's pod."""
    artifact_store: ArtifactStoreSpec = pydantic.Field(default_factory=ArtifactStoreSpec)
    """Where artifacts are written."""
    retraining: RetrainingPolicy = pydantic.Field(default_factory=RetrainingPolicy)
    """Scheduled and drift-triggered retraining."""
    card: ModelCardSpec = pydantic.Field(default_factory=ModelCardSpec)
    """Context for the model card, and which of its fields a person must fill in."""
    feature_schema: FeatureSchemaSpec | None = pydantic.Field(default=None, alias="schema")
    """The data's declared columns (types, allowed values), inline or from a ConfigMap."""
    training_deadline_seconds: int = pydantic.Field(default=3600, ge=60, le=86400)
    """A training Job running longer than this is stopped and the version fails."""


class ArtifactRef(base.ApiModel):
    """A verified artifact in the store."""

    uri: str = pydantic.Field(max_length=2048)
    """Where the artifact directory is."""
    digest: str = pydantic.Field(pattern=base.SHA256_PATTERN)
    """sha256 of the artifact's manifest; readers verify it and every file before use."""


class GateResults(base.ApiModel):
    """Outcome of the spec's gates for one version."""

    quality: Literal["passed", "failed", "inconclusive"]
    """Quality gates."""
    fairness: Literal["passed", "failed", "inconclusive"]
    """Fairness gates."""
    promotable: bool
    """True when every gate passed: only promotable versions may serve."""


class ChallengeResult(base.ApiModel):
    """A version compared with the champion on the holdout (spec.retraining.challengerGates)."""

    champion: int = pydantic.Field(ge=1)
    """The champion version it was compared with."""
    passed: bool
    """True when no metric and no fairness gap is worse than the gates allow."""
    same_holdout: bool
    """True when both versions were scored on the same holdout rows: the training Job scored the
    champion on this version's holdout (championComparison), or both used the same dataset digest,
    split seed and share; otherwise the comparison is indicative only."""
    message: str = pydantic.Field(default="", max_length=4096)
    """Each compared figure, or why the version is a rejected challenger."""


class ChampionComparison(base.ApiModel):
    """The champion of the time scored by this version's training Job on this version's holdout
    (``--champion-artifact``, docs/contracts.md §3)."""

    digest: str = pydantic.Field(pattern=base.SHA256_PATTERN)
    """The champion artifact the Job verified and scored."""
    same_holdout: bool
    """True when ``metrics`` were computed on this version's holdout rows."""
    reason: str | None = pydantic.Field(default=None, max_length=1024)
    """Why the champion could not be compared (schema change, artifact missing), else null."""
    metrics: dict[str, float] = pydantic.Field(default_factory=dict)
    """The champion's metrics on this version's holdout, with the same names as ``metrics``."""


class ModelVersion(base.ApiModel):
    """One trained (or cached) version of the model."""

    version: int = pydantic.Field(ge=1)
    """Version number, increasing from 1."""
    phase: Literal["Training", "Succeeded", "Failed"]
    """Where this version is in its life."""
    reason: str | None = pydantic.Field(default=None, max_length=128)
    """Why it failed or was rejected (DataInvalid, PolicyViolation, GateFailed, ...)."""
    message: str | None = pydantic.Field(default=None, max_length=4096)
    """Details for people."""
    artifact: ArtifactRef | None = None
    """The artifact, when one was written."""
    dataset_sha256: str | None = pydantic.Field(default=None, pattern=base.SHA256_PATTERN)
    """Digest of the data this version learned from."""
    spec_hash: str | None = pydantic.Field(default=None, pattern=base.SHA256_PATTERN)
    """Digest of the spec fields that determine the model."""
    metrics: dict[str, float] = pydantic.Field(default_factory=dict)
    """Holdout metrics."""
    gates: GateResults | None = None
    """Gate outcome."""
    cached: bool = False
    """True when this version reused an earlier identical artifact and no Job ran."""
    job_name: str | None = pydantic.Field(default=None, max_length=63)
    """The training Job that produced it."""
    created_at: str | None = pydantic.Field(default=None, json_schema_extra={"format": "date-time"})
    """When the version was started."""
    generation: int | None = pydantic.Field(default=None, ge=1)
    """The Model's metadata.generation this version was started for."""
    retrain_token: str | None = pydantic.Field(default=None, max_length=128)
    """The mlsteward.io/retrain annotation's value that requested this version, if any."""
    challenge: ChallengeResult | None = None
    """The relative gates against the champion of the time (absent for the first champion)."""
    champion_comparison: ChampionComparison | None = None
    """The champion scored on this version's holdout by its training Job, when one existed."""
    documentation_missing: list[str] = pydantic.Field(default_factory=list, max_length=3)
    """Required model-card fields (spec.card.required) that were empty when this version was
    started: such a version is never champion or challenger."""


class ModelAliases(base.ApiModel):
    """Named pointers to versions that Deployments follow."""

    champion: int | None = pydantic.Field(default=None, ge=1)
    """The version serving production traffic."""
    challenger: int | None = pydantic.Field(default=None, ge=1)
    """A candidate version under evaluation."""


class RetrainingStatus(base.ApiModel):
    """What automatic retraining (Monitor requests and the schedule) did lately."""

    last_request: str | None = pydantic.Field(default=None, max_length=128)
    """The last automatic mlsteward.io/retrain value handled (trained, refused or nothing to do)."""
    last_retrain_time: str | None = pydantic.Field(default=None, json_schema_extra={"format": "date-time"})
    """When an automatic request last started a version."""
    retrains_today: int = pydantic.Field(default=0, ge=0)
    """Automatic retrains started on the UTC day of the last one."""
    last_schedule_time: str | None = pydantic.Field(default=None, json_schema_extra={"format": "date-time"})
    """The last cron time of spec.retraining.schedule acted upon."""
    message: str = pydantic.Field(default="", max_length=1024)
    """What happened to the last request."""


class ModelStatus(base.StatusBase):
    """What the operator observed and decided for this Model."""

    latest_version: int | None = pydantic.Field(default=None, ge=1)
    """The highest version number started."""
    versions: list[ModelVersion] = pydantic.Field(default_factory=list, max_length=20)
    """Recent versions, newest last (bounded history)."""
    aliases: ModelAliases = pydantic.Field(default_factory=ModelAliases)
    """champion and challenger versions."""
    retraining: RetrainingStatus | None = None
    """Automatic retraining: last request, last retrain and the count today."""


def resolve_feature_schema(spec: ModelSpec, document: Any) -> ModelSpec:
    """The spec with a shared schema's ``version`` and ``columns`` copied in from the referenced
    ConfigMap's parsed content (the reference is kept, saying where they came from). Raises
    ValueError naming the ConfigMap when the content is not a schema."""
    schema = spec.feature_schema
    if schema is None or schema.config_map_ref is None or schema.columns is not None:
        return spec
    ref = schema.config_map_ref
    if not isinstance(document, dict):
        raise ValueError(f"ConfigMap {ref.name} key {ref.key}: expected a mapping with version and columns")
    try:
        shared = FeatureSchemaSpec.model_validate(
            {"version": document.get("version"), "columns": document.get("columns")}
        )
    except pydantic.ValidationError as error:
        raise ValueError(f"ConfigMap {ref.name} key {ref.key} is not a feature schema: {error}") from error
    resolved = shared.model_copy(update={"config_map_ref": ref})
    return spec.model_copy(update={"feature_schema": resolved})


# The spec fields that determine an artifact; resources, store, retraining and deadlines do not.
HASHED_FIELDS = (
    "task",
    "dataset",
    "estimator",
    "split",
    "quality_gates",
    "fairness_gates",
    "protected_attributes",
    "parity",
    "card",
    "feature_schema",
)


def spec_hash(spec: ModelSpec) -> str:
    """sha256 of the canonical JSON of the fields that determine the artifact, defaults included
    (writing a default explicitly does not change it). The trainer records it in the lineage and
    the operator's training cache compares it: one function for both."""
    wire = spec.model_dump(mode="json", by_alias=True, include=set(HASHED_FIELDS))
    return hashlib.sha256(orjson.dumps(wire, option=orjson.OPT_SORT_KEYS)).hexdigest()
