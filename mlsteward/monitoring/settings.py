"""The monitor's one settings object, its flags and environment, and the Monitor-spec config file.

Every ``Settings`` field is one command-line flag (``profile_artifact`` is
``--profile-artifact``) and one environment variable (``MLSTEWARD_MONITOR_PROFILE_ARTIFACT``);
a flag wins over the environment, which wins over the default. Nothing is read at import.

The ``--config`` file (JSON or YAML) carries the Monitor spec's ``window``, ``drift``,
``performance`` and ``fairness`` in their wire form (camelCase, as in a manifest); a whole
Monitor object (with ``spec``) or a bare spec are accepted, other keys are ignored. It is
validated with the same models that generate the CRD, so the sidecar and the API agree.
"""

from __future__ import annotations

import argparse
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pydantic
import yaml
from pydantic import alias_generators

from mlsteward.api import monitor as monitor_api
from mlsteward.monitoring import monitors, verdicts, windows

ENV_PREFIX = "MLSTEWARD_MONITOR_"
_DURATION_PART = re.compile(r"([0-9]+)(s|m|h)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


class Settings(pydantic.BaseModel):
    """Flags of ``mlsteward monitor``; each field documents its unit."""

    model_config = pydantic.ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    profile_artifact: pathlib.Path
    """Directory of the artifact holding profile.json (and schema.json)."""
    digest: str = pydantic.Field(pattern=r"^[0-9a-f]{64}$")
    """The artifact's sha256 digest; the monitor refuses an artifact that does not match."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = pydantic.Field(default=8082, ge=0, le=65535)
    """Port to listen on (0: any free port)."""
    config: pathlib.Path | None = None
    """JSON or YAML file with the Monitor spec's window, drift, performance and fairness."""
    max_body_bytes: int = pydantic.Field(default=32 << 20, ge=1024)
    """Largest request body accepted, in bytes; larger ones get 413 and are counted."""
    max_batch_rows: int = pydantic.Field(default=100_000, ge=1)
    """Most rows in one batch (or labels in one label post)."""
    max_missing_share: float = pydantic.Field(default=0.5, gt=0, le=1)
    """A batch whose share of missing feature values exceeds this is rejected (a NaN storm)."""
    max_concurrent_ingest: int = pydantic.Field(default=64, ge=1)
    """Ingest requests read at once; more are answered 503 and counted as dropped."""
    label_buffer_size: int = pydantic.Field(default=100_000, ge=0)
    """Predictions remembered for the label join, in rows (the oldest are forgotten first)."""
    sliding_panes: int = pydantic.Field(default=10, ge=2, le=100)
    """Panes per sliding window: a sliding window advances by size / panes rows."""
    min_group_rows: int = pydantic.Field(default=30, ge=1)
    """Rows a group needs in the window to count in the demographic parity difference."""
    tick_seconds: float = pydantic.Field(default=1.0, gt=0, le=60)
    """How often time-based windows are checked when no traffic arrives, in seconds."""
    log_level: str = pydantic.Field(default="info", pattern=r"^(critical|error|warning|info|debug)$")
    """uvicorn's log level."""
    decision_log_store: str = ""
    """Where the decision log goes (/path, file:// or s3://bucket/prefix); empty: no decision log."""
    decision_log_namespace: str = "default"
    """Namespace of the Deployment whose decisions are logged."""
    decision_log_deployment: str = ""
    """Name of the Deployment whose decisions are logged (required with a store)."""
    decision_log_chain: str = ""
    """Name of this writer's chain (the pod's name); empty: the host name."""
    decision_log_inputs: bool = False
    """Also log the input features (off by default: data minimisation)."""
    decision_log_retention: str = pydantic.Field(default="180d", pattern=r"^([0-9]+(s|m|h|d))+$")
    """How long segments are kept (e.g. 180d, 4320h)."""
    decision_log_flush_seconds: float = pydantic.Field(default=10.0, gt=0, le=3600)
    """Longest a decision waits in memory before its segment is written, in seconds."""
    decision_log_segment_records: int = pydantic.Field(default=20_000, ge=1)
    """Write a segment as soon as this many decisions wait."""
    decision_log_queue_records: int = pydantic.Field(default=50_000, ge=1)
    """Decisions buffered at most; more are dropped and counted
    (mlsteward_audit_decisions_dropped_total)."""
    decision_log_retention_check_seconds: float = pydantic.Field(default=3600.0, gt=0)
    """How often expired segments are looked for, in seconds."""


class MonitorConfig(pydantic.BaseModel):
    """The part of a Monitor spec the sidecar needs (the rest is the operator's)."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="ignore"
    )

    window: monitor_api.Window = pydantic.Field(default_factory=monitor_api.Window)
    drift: monitor_api.DriftPolicy = pydantic.Field(default_factory=monitor_api.DriftPolicy)
    performance: monitor_api.PerformancePolicy | None = None
    fairness: list[monitor_api.FairnessPolicy] = pydantic.Field(default_factory=list)


def parse_duration(text: str) -> float:
    """``1h30m`` -> 5400.0 seconds (the API's Go-style durations)."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 15m, 6h or 1h30m")
    return float(sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


def load_config(path: pathlib.Path | None) -> MonitorConfig:
    if path is None:
        return MonitorConfig()
    text = path.read_bytes()
    document: Any = orjson.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(document, Mapping) and isinstance(document.get("spec"), Mapping):
        document = document["spec"]
    return MonitorConfig.model_validate(document or {})


def rules(config: MonitorConfig) -> verdicts.Rules:
    drift = config.drift
    return verdicts.Rules(
        numeric_test=drift.numeric_test,
        numeric_threshold=drift.numeric_threshold,
        categorical_test=drift.categorical_test,
        categorical_threshold=drift.categorical_threshold,
        overrides={f.name: (f.test, f.threshold) for f in drift.features},
        drifting_share=drift.drifting_share,
        consecutive_windows=drift.consecutive_windows,
        min_samples=config.window.min_samples,
    )


def window_spec(config: MonitorConfig, settings: Settings) -> windows.WindowSpec:
    window = config.window
    duration = None if window.duration is None else parse_duration(window.duration)
    return windows.WindowSpec(window.kind, window.size, duration, window.min_samples, settings.sliding_panes)


def options(config: MonitorConfig, settings: Settings) -> monitors.Options:
    performance = config.performance
    limits: dict[str, float] = {}
    if performance is not None:
        for name in ("min_accuracy", "min_roc_auc", "max_rmse"):
            value = getattr(performance, name)
            if value is not None:
                limits[name] = value
    timeout = parse_duration(performance.label_timeout) if performance is not None else 86_400.0
    return monitors.Options(
        label_buffer_size=settings.label_buffer_size,
        label_timeout_s=timeout,
        fairness_limits={f.attribute: f.max_demographic_parity_difference for f in config.fairness},
        min_group_rows=settings.min_group_rows,
        performance_limits=limits,
    )


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def parser() -> argparse.ArgumentParser:
    """One flag per ``Settings`` field, same name, defaults left to the model."""
    result = argparse.ArgumentParser(
        prog="mlsteward monitor",
        description="The drift-monitor sidecar: compares production rows with the reference profile.",
        epilog=f"Every flag can also be set as an environment variable {ENV_PREFIX}<FLAG_NAME>.",
    )
    for name, field in Settings.model_fields.items():
        result.add_argument(flag_name(name), dest=name, default=None, help=field.description)
    return result


def from_args(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Settings from flags, then ``MLSTEWARD_MONITOR_*`` variables, then defaults."""
    namespace = vars(parser().parse_args(list(argv)))
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        if namespace.get(name) is not None:
            values[name] = namespace[name]
        elif env_name(name) in environ:
            values[name] = environ[env_name(name)]
    return Settings.model_validate(values)
