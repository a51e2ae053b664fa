"""The documentation bundle's content: one plain document assembled from a verified artifact, plus
what the cluster knows about the version (its record, promotion history, monitoring thresholds).

Pure: :func:`assemble` takes the artifact's parsed files and the cluster objects (empty offline)
and returns the document that :mod:`mlsteward.evidence.render` writes as Markdown and HTML.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
# Metrics where a lower value is better, for the reader's orientation.
_LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}
_RATES = ("selection_rate", "true_positive_rate", "false_positive_rate")


def _missing(card: Obj, required: list[str]) -> list[str]:
    filled = {
        "intendedUse": bool(str(card.get("intendedUse") or card.get("intended_use") or "").strip()),
        "owners": any(str(o).strip() for o in card.get("owners") or []),
        "limitations": any(str(x).strip() for x in card.get("limitations") or []),
    }
    return [f"card.{name}" for name in sorted(set(required)) if not filled.get(name, False)]


def assemble(
    *,
    digest: str,
    uri: str,
    files: dict[str, Obj],
    model: Obj | None = None,
    record: Obj | None = None,
    deployments: list[Obj] | None = None,
    monitors: list[Obj] | None = None,
    approvals: list[Obj] | None = None,
) -> Obj:
    """The bundle document. ``files`` maps artifact file names (lineage.json, metrics.json,
    card.json, schema.json, spec.json when present) to their parsed content."""
    lineage, metrics, card = files["lineage.json"], files["metrics.json"], files["card.json"]
    schema, spec = files["schema.json"], files.get("spec.json") or {}
    spec_card = spec.get("card") or {}
    required = list(spec_card.get("required") or [])
    meta = (model or {}).get("metadata") or {}
    recorded_model = lineage.get("model") or {}
    number = (record or {}).get("version")
    name = meta.get("name") or recorded_model.get("name") or "model"
    namespace = meta.get("namespace") or recorded_model.get("namespace")
    intervals = metrics.get("intervals") or {}
    return {
        "schema": "mlsteward.io/documentation-bundle/v1",
        "title": f"{name} version {number}" if number is not None else f"{name} artifact {digest[:12]}",
        "model": {
            "name": name,
            "namespace": namespace,
            "version": number,
            "phase": (record or {}).get("phase"),
            "trained_at": (record or {}).get("createdAt"),
            "task": schema.get("task"),
            "target": schema.get("target"),
            "classes": schema.get("classes"),
            "positive_class": schema.get("positive_class"),
            "estimator": lineage.get("estimator"),
        },
        "artifact": {"digest": digest, "uri": uri, "model_onnx_sha256": lineage.get("model_onnx_sha256")},
        "documentation": {
            "intended_use": card.get("intended_use") or "",
            "owners": list(card.get("owners") or []),
            "limitations": list(card.get("limitations") or []),
            "required": required,
            "missing": _missing(spec_card or card, required),
        },
        "data": {
            **(lineage.get("dataset") or {}),
            "split": lineage.get("split"),
            "feature_schema": lineage.get("feature_schema"),
        },
        "features": schema.get("features") or [],
        "protected": {
            "sensitive": schema.get("sensitive") or [],
            **(card.get("policy") or {}),
        },
        "metrics": [
            {
                "name": metric,
                "value": value,
                "interval": (intervals.get("metrics") or {}).get(metric),
                "better": "lower" if metric in _LOWER_IS_BETTER else "higher",
            }
            for metric, value in sorted((metrics.get("holdout") or {}).items())
        ],
        "intervals": {k: intervals.get(k) for k in ("method", "confidence", "resamples", "seed")},
        "fairness": _fairness(metrics.get("fairness") or {}, intervals.get("fairness") or {}),
        "proxies": [
            {"column": column, **{k: v for k, v in report.items() if k != "groups"}}
            for column, report in sorted((metrics.get("proxies") or {}).items())
        ],
        "gates": {**(metrics.get("gates") or {}), "parity": metrics.get("parity")},
        "history": _history(deployments or [], number, digest),
        "approvals": sorted(
            (
                {
                    "deployment": (a.get("spec") or {}).get("deployment"),
                    "version": (a.get("spec") or {}).get("version"),
                    "approved_by": (a.get("spec") or {}).get("approvedBy"),
                    "reason": (a.get("spec") or {}).get("reason"),
                    "at": (a.get("metadata") or {}).get("creationTimestamp"),
                }
                for a in approvals or []
            ),
            key=lambda a: (str(a["at"] or ""), str(a["deployment"])),
        ),
        "monitoring": _monitoring(monitors or []),
        "lineage": {
            "spec_hash": lineage.get("spec_hash"),
            "seed": lineage.get("seed"),
            "versions": lineage.get("versions"),
            "image_digest": lineage.get("image_digest"),
            "policy_exceptions": lineage.get("policy_exceptions"),
        },
    }


def _fairness(reports: Obj, intervals: Obj) -> list[Obj]:
    columns: list[Obj] = []
    for column, report in sorted(reports.items()):
        bounds = intervals.get(column) or {}
        groups = []
        for group, entry in sorted((report.get("groups") or {}).items()):
            row: Obj = {"group": group, "size": entry.get("size")}
            for rate in _RATES:
                row[rate] = entry.get(rate)
                row[f"{rate}_interval"] = (bounds.get(group) or {}).get(rate)
            groups.append(row)
        columns.append(
            {
                "column": column,
                "status": report.get("status"),
                "min_group_size": report.get("min_group_size"),
                "small_groups": report.get("small_groups") or [],
                "demographic_parity_difference": report.get("demographic_parity_difference"),
                "demographic_parity_ratio": report.get("demographic_parity_ratio"),
                "equalized_odds_difference": report.get("equalized_odds_difference"),
                "checks": report.get("checks") or [],
                "groups": groups,
            }
        )
    return columns


def _history(deployments: list[Obj], number: int | None, digest: str) -> list[Obj]:
    """Promotion records naming this version (by digest, or by number), from each Deployment's
    ``status.history``; without a history, what serves it now."""
    entries: list[Obj] = []
    for deployment in deployments:
        name = (deployment.get("metadata") or {}).get("name")
        status = deployment.get("status") or {}
        history = status.get("history")
        if isinstance(history, list) and history:  # the schema defaults it to []: empty means none kept
            for h in history:
                if h.get("digest") == digest or (number is not None and str(h.get("version")) == str(number)):
                    entries.append(
                        {
                            "deployment": name,
                            "action": h.get("action"),
                            "at": h.get("at"),
                            "reason": h.get("reason"),
                            "approved_by": h.get("approvedBy"),
                            "hash": h.get("hash"),
                        }
                    )
            continue
        for role, field in (("active", "activeVersion"), ("canary", "canaryVersion")):
            if number is not None and status.get(field) == number:
                entries.append(
                    {
                        "deployment": name,
                        "action": f"serving ({role})",
                        "at": None,
                        "reason": f"status.{field} (no promotion history recorded)",
                        "approved_by": None,
                        "hash": None,
                    }
                )
    return sorted(entries, key=lambda e: (str(e["at"] or ""), str(e["deployment"])))


def _monitoring(monitors: list[Obj]) -> list[Obj]:
    found = []
    for monitor in monitors:
        spec = monitor.get("spec") or {}
        drift = spec.get("drift") or {}
        found.append(
            {
                "monitor": (monitor.get("metadata") or {}).get("name"),
                "deployment": (spec.get("deploymentRef") or {}).get("name"),
                "window": spec.get("window") or {},
                "drift": {k: v for k, v in drift.items() if k != "features"},
                "feature_overrides": drift.get("features") or [],
                "performance": spec.get("performance"),
                "fairness": spec.get("fairness") or [],
                "actions": spec.get("actions") or {},
            }
        )
    return found
