"""Writing the documentation bundle: the same sections as Markdown and as one self-contained HTML page.

The document is first laid out as sections of simple blocks (paragraphs, lists, key-value
tables, tables, warnings), and both formats are written from that one layout, so they cannot
say different things. The HTML has its CSS inline, loads nothing, and prints to PDF on A4.
"""

from __future__ import annotations

import html
import json
from typing import Any

Obj = dict[str, Any]
# ("p" | "h3" | "warn", text), ("list", items), ("kv", pairs), ("table", headers, rows)
Block = tuple[Any, ...]
Section = tuple[str, list[Block]]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;margin:2rem auto;
max-width:60rem;padding:0 1rem}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:2px solid #d0d7de;
padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0;width:100%}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;word-break:break-all}
.warn{background:#fff4e5;border-left:4px solid #d9822b;padding:.5rem .8rem;margin:.6rem 0}
.ok{color:#1a7f37}.bad{color:#cf222e}.muted{color:#57606a}
@media print{body{margin:0;max-width:none;font-size:11px}h2{break-after:avoid}table,.warn{break-inside:avoid}
@page{size:A4;margin:15mm}}
"""


def _number(value: Any) -> str:
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
                ("Version", _number(model["version"])),
                ("Trained", _number(model["trained_at"])),
                ("Task", f"{model['task']} of {model['target']}"),
                ("Estimator", (model.get("estimator") or {}).get("class_name")),
                ("Artifact", f"sha256:{artifact['digest']}"),
                ("model.onnx", f"sha256:{artifact['model_onnx_sha256']}"),
                ("Promotable", _number((doc["gates"] or {}).get("promotable"))),
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
                        ("Rows", _number(data.get("rows"))),
                        (
                            "Split",
                            f"{_number(split.get('train_rows'))} training / "
                            f"{_number(split.get('test_rows'))} holdout rows (test fraction "
                            f"{split.get('test_fraction')}, seed {split.get('seed')}, "
                            f"stratified: {_number(split.get('stratified'))})",
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
                        ("Protected-attribute preset", _number(protected.get("preset"))),
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
                        [m["name"], _number(m["value"]), _interval(m["interval"]), m["better"]]
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
                        _number(g["size"]),
                        _number(g["selection_rate"]),
                        _interval(g["selection_rate_interval"]),
                        _number(g["true_positive_rate"]),
                        _interval(g["true_positive_rate_interval"]),
                        _number(g["false_positive_rate"]),
                        _interval(g["false_positive_rate_interval"]),
                    ]
                    for g in column["groups"]
                ],
            )
        )
        fairness_blocks.append(
            (
                "p",
                f"Demographic parity difference {_number(column['demographic_parity_difference'])}, ratio "
                f"{_number(column['demographic_parity_ratio'])}; equalized odds difference "
                f"{_number(column['equalized_odds_difference'])}."
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
                            _number(p.get("roc_auc")),
                            _number(p.get("threshold")),
                            _number(p.get("flagged")),
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
        [c.get("gate"), _number(c.get("value")), _number(c.get("limit")), _status(c.get("status"))]
        for c in gates.get("quality_checks") or []
    ] + [
        [
            f"{column}: {c.get('gate')}",
            _number(c.get("value")),
            _number(c.get("limit")),
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
                        ("Promotable", _number(gates.get("promotable"))),
                        (
                            "ONNX parity",
                            f"{'passed' if parity.get('passed') else 'failed'}: label agreement "
                            f"{_number(parity.get('label_agreement'))}, largest difference "
                            f"{_number(parity.get('max_abs_difference'))} over "
                            f"{_number(parity.get('rows'))} rows",
                        ),
                    ],
                ),
                ("table", ["check", "value", "limit", "status"], checks),
            ],
        )
    )
    out.append(
        (
            "Approvals and promotion history",
            [
                (
                    "table",
                    ["at", "deployment", "action", "reason", "approved by"],
                    [
                        [
                            _number(h["at"]),
                            h["deployment"],
                            h["action"],
                            _number(h["reason"]),
                            _number(h["approved_by"]),
                        ]
                        for h in doc["history"]
                    ],
                )
            ]
            if doc["history"]
            else [("p", "No Deployment has served or promoted this version (or none was readable).")],
        )
    )
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
                        ("Seed", _number(lineage.get("seed"))),
                        ("Trainer image", _number(lineage.get("image_digest"))),
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


def to_markdown(doc: Obj) -> str:
    lines = [f"# Documentation bundle: {doc['title']}", ""]
    for heading, blocks in sections(doc):
        lines += [f"## {heading}", ""]
        for kind, *rest in blocks:
            content = rest[0] if len(rest) == 1 else tuple(rest)
            if kind == "p":
                lines += [_md(content), ""]
            elif kind == "h3":
                lines += [f"### {_md(content)}", ""]
            elif kind == "warn":
                lines += [f"> **Warning:** {_md(content)}", ""]
            elif kind == "list":
                lines += [f"- {_md(item)}" for item in content] + [""]
            elif kind == "kv":
                lines += [f"- **{_md(k)}:** {_md(_number(v))}" for k, v in content] + [""]
            elif kind == "table":
                headers, rows = content
                lines += _md_table(headers, rows)
    return "\n".join(lines).rstrip() + "\n"


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["_None._", ""]
    out = ["| " + " | ".join(_md(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def to_html(doc: Obj) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(doc['title'])}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(doc['title'])}</h1>",
        '<p class="muted">Documentation bundle for artifact '
        f"<code>sha256:{e(doc['artifact']['digest'])}</code></p>",
    ]
    for heading, blocks in sections(doc):
        parts.append(f"<h2>{e(heading)}</h2>")
        for kind, *rest in blocks:
            content = rest[0] if len(rest) == 1 else tuple(rest)
            if kind == "p":
                parts.append(f"<p>{e(str(content))}</p>")
            elif kind == "h3":
                parts.append(f"<h3>{e(str(content))}</h3>")
            elif kind == "warn":
                parts.append(f'<div class="warn" role="alert">{e(str(content))}</div>')
            elif kind == "list":
                parts.append("<ul>" + "".join(f"<li>{e(str(i))}</li>" for i in content) + "</ul>")
            elif kind == "kv":
                rows = "".join(f"<tr><th>{e(str(k))}</th><td>{e(_number(v))}</td></tr>" for k, v in content)
                parts.append(f"<table>{rows}</table>")
            elif kind == "table":
                headers, rows_data = content
                if not rows_data:
                    parts.append('<p class="muted">None.</p>')
                    continue
                head = "".join(f"<th>{e(h)}</th>" for h in headers)
                body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows_data)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _cell(value: Any) -> str:
    text = str(value)
    numeric = text.replace(".", "", 1).replace("-", "", 1).isdigit() or (
        text.startswith("[") and text.endswith("]")
    )
    css = {"passed": "ok", "failed": "bad"}.get(text, "num" if numeric else "")
    return f'<td class="{css}">{html.escape(text)}</td>' if css else f"<td>{html.escape(text)}</td>"
