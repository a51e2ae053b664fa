"""The documentation bundle laid out as sections of simple blocks, in reading order.

Blocks: ``("p" | "h3" | "warn", text)``, ``("list", items)``, ``("kv", pairs)`` and
``("table", headers, rows)``. :mod:`mlsteward.evidence.render` writes the same layout as Markdown
and as HTML, so the two formats cannot say different things.
"""

from __future__ import annotations

import json
from typing import Any

Obj = dict[str, Any]
Block = tuple[Any, ...]
Section = tuple[str, list[Block]]


def number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _interval(bounds: Any) -> str:
    if not bounds:
        return "n/a"
    return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]"


def _status(value: Any) -> str:
    return str(value) if value is not None else "n/a"


def sections(doc: Obj) -> list[Section]:
    """The bundle laid out as sections of blocks, in reading order."""
    model, artifact, documentation = doc["model"], doc["artifact"], doc["documentation"]
    out: list[Section] = []
    summary: list[Block] = [
        (
            "kv",
            [
                ("Model", f"{model['namespace']}/{model['name']}" if model["namespace"] else model["name"]),
                ("Version", number(model["version"])),
                ("Trained", number(model["trained_at"])),
                ("Task", f"{model['task']} of {model['target']}"),
                ("Estimator", (model.get("estimator") or {}).get("class_name")),
                ("Artifact", f"sha256:{artifact['digest']}"),
                ("model.onnx", f"sha256:{artifact['model_onnx_sha256']}"),
                ("Promotable", number((doc["gates"] or {}).get("promotable"))),
            ],
        )
    ]
    if documentation["missing"]:
        summary.append(
            (
                "warn",
                "Required documentation is missing: "
                + ", ".join(documentation["missing"])
                + ". This version may not be promoted until a person fills these fields in the Model spec.",
            )
        )
    out.append(("Summary", summary))
    out.append(
        (
            "Intended use and owners",
            [
                ("p", documentation["intended_use"] or "Not stated."),
                ("kv", [("Owners", ", ".join(documentation["owners"]) or "Not stated.")]),
                ("kv", [("Required from a person", ", ".join(documentation["required"]) or "none")]),
            ],
        )
    )
    data = doc["data"]
    split = data.get("split") or {}
    schema = data.get("feature_schema") or {}
    out.append(
        (
            "Data",
            [
                (
                    "kv",
                    [
                        ("Location", data.get("uri")),
                        ("Digest", f"sha256:{data.get('sha256')}"),
                        ("Rows", number(data.get("rows"))),
                        (
                            "Split",
                            f"{number(split.get('train_rows'))} training / "
                            f"{number(split.get('test_rows'))} holdout rows (test fraction "
                            f"{split.get('test_fraction')}, seed {split.get('seed')}, "
                            f"stratified: {number(split.get('stratified'))})",
                        ),
                        (
                            "Feature schema",
                            f"version {schema['version']}, sha256:{schema['sha256']}"
                            + (f" (ConfigMap {schema['config_map']})" if schema.get("config_map") else "")
                            if schema
                            else "none declared",
                        ),
                    ],
                )
            ],
        )
    )
    protected = doc["protected"]
    exceptions = protected.get("exceptions_used") or []
    out.append(
        (
            "Features and protected attributes",
            [
                ("table", ["feature", "kind"], [[f["name"], f["kind"]] for f in doc["features"]]),
                (
                    "kv",
                    [
                        (
                            "Excluded from the inputs (sensitive, used only to measure fairness)",
                            ", ".join(protected.get("sensitive") or []) or "none",
                        ),
                        ("Protected-attribute preset", number(protected.get("preset"))),
                        (
                            "Additional protected columns",
                            ", ".join(protected.get("additional") or []) or "none",
                        ),
                        (
                            "Approved exceptions used",
                            "; ".join(json.dumps(e, sort_keys=True) for e in exceptions) or "none",
                        ),
                    ],
                ),
            ],
        )
    )
    meta = doc["intervals"]
    out.append(
        (
            "Holdout metrics",
            [
                (
                    "table",
                    ["metric", "value", f"{_pct(meta.get('confidence'))} interval", "better"],
                    [
                        [m["name"], number(m["value"]), _interval(m["interval"]), m["better"]]
                        for m in doc["metrics"]
                    ],
                ),
                (
                    "p",
                    f"Intervals: {meta.get('method') or 'not computed'}, {meta.get('resamples')} resamples, "
                    f"seed {meta.get('seed')}.",
                ),
            ],
        )
    )
    fairness_blocks: list[Block] = []
    for column in doc["fairness"]:
        fairness_blocks.append(
            (
                "h3",
                f"{column['column']}: {_status(column['status'])} "
                f"(groups below {column['min_group_size']} rows are not compared)",
            )
        )
        fairness_blocks.append(
            (
                "table",
                ["group", "size", "selection rate", "interval", "TPR", "interval", "FPR", "interval"],
                [
                    [
                        g["group"],
                        number(g["size"]),
                        number(g["selection_rate"]),
                        _interval(g["selection_rate_interval"]),
                        number(g["true_positive_rate"]),
                        _interval(g["true_positive_rate_interval"]),
                        number(g["false_positive_rate"]),
                        _interval(g["false_positive_rate_interval"]),
                    ]
                    for g in column["groups"]
                ],
            )
        )
        fairness_blocks.append(
            (
                "p",
                f"Demographic parity difference {number(column['demographic_parity_difference'])}, ratio "
                f"{number(column['demographic_parity_ratio'])}; equalized odds difference "
                f"{number(column['equalized_odds_difference'])}."
                + (f" Small groups: {', '.join(column['small_groups'])}." if column["small_groups"] else ""),
            )
        )
    out.append(("Fairness per group (holdout)", fairness_blocks or [("p", "No sensitive columns.")]))
    out.append(
        (
            "Proxy findings",
            [
                (
                    "table",
                    ["sensitive column", "ROC AUC from the features", "threshold", "flagged as proxied"],
                    [
                        [
                            p["column"],
                            number(p.get("roc_auc")),
                            number(p.get("threshold")),
                            number(p.get("flagged")),
                        ]
                        for p in doc["proxies"]
                    ],
                )
            ],
        )
    )
    gates = doc["gates"] or {}
    parity = gates.get("parity") or {}
    checks = [
        [c.get("gate"), number(c.get("value")), number(c.get("limit")), _status(c.get("status"))]
        for c in gates.get("quality_checks") or []
    ] + [
        [
            f"{column}: {c.get('gate')}",
            number(c.get("value")),
            number(c.get("limit")),
            _status(c.get("status")),
        ]
        for column, listed in sorted((gates.get("fairness_checks") or {}).items())
        for c in listed
    ]
    out.append(
        (
            "Gate results",
            [
                (
                    "kv",
                    [
                        ("Quality", _status(gates.get("quality"))),
                        ("Fairness", _status(gates.get("fairness"))),
                        ("Promotable", number(gates.get("promotable"))),
                        (
                            "ONNX parity",
                            f"{'passed' if parity.get('passed') else 'failed'}: label agreement "
                            f"{number(parity.get('label_agreement'))}, largest difference "
                            f"{number(parity.get('max_abs_difference'))} over "
                            f"{number(parity.get('rows'))} rows",
                        ),
                    ],
                ),
                ("table", ["check", "value", "limit", "status"], checks),
            ],
        )
    )
    approvals = doc.get("approvals") or []
    approval_blocks: list[Block] = (
        [
            (
                "table",
                ["approved at", "deployment", "version", "approved by", "reason"],
                [
                    [
                        number(a["at"]),
                        a["deployment"],
                        number(a["version"]),
                        number(a["approved_by"]),
                        a["reason"],
                    ]
                    for a in approvals
                ],
            )
        ]
        if approvals
        else [("p", "No Approval names this artifact (or none was readable).")]
    )
    history_blocks: list[Block] = (
        [
            (
                "table",
                ["at", "deployment", "action", "reason", "approved by"],
                [
                    [
                        number(h["at"]),
                        h["deployment"],
                        h["action"],
                        number(h["reason"]),
                        number(h["approved_by"]),
                    ]
                    for h in doc["history"]
                ],
            )
        ]
        if doc["history"]
        else [("p", "No Deployment has served or promoted this version (or none was readable).")]
    )
    out.append(("Approvals and promotion history", approval_blocks + history_blocks))
    out.append(("Known limitations", [("list", documentation["limitations"] or ["None stated."])]))
    monitoring_blocks: list[Block] = []
    for m in doc["monitoring"]:
        drift = m["drift"]
        monitoring_blocks.append(
            (
                "kv",
                [
                    ("Monitor", f"{m['monitor']} (watches {m['deployment']})"),
                    ("Window", json.dumps(m["window"], sort_keys=True)),
                    ("Drift", json.dumps(drift, sort_keys=True)),
                    ("Per-feature overrides", json.dumps(m["feature_overrides"], sort_keys=True)),
                    ("Performance", json.dumps(m["performance"], sort_keys=True)),
                    ("Fairness", json.dumps(m["fairness"], sort_keys=True)),
                    ("Actions", json.dumps(m["actions"], sort_keys=True)),
                ],
            )
        )
    out.append(
        ("Monitoring thresholds", monitoring_blocks or [("p", "No Monitor watches a Deployment of it.")])
    )
    lineage = doc["lineage"]
    out.append(
        (
            "Lineage",
            [
                (
                    "kv",
                    [
                        ("Spec hash", lineage.get("spec_hash")),
                        ("Seed", number(lineage.get("seed"))),
                        ("Trainer image", number(lineage.get("image_digest"))),
                        (
                            "Libraries",
                            ", ".join(f"{k} {v}" for k, v in sorted((lineage.get("versions") or {}).items())),
                        ),
                    ],
                )
            ],
        )
    )
    return out


def _pct(value: Any) -> str:
    return f"{float(value) * 100:.0f}%" if value is not None else "no"
