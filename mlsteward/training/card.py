"""The model card: a JSON document and the same content as Markdown for people.

Sections follow the usual model-card outline: intended use, data, model, metrics, fairness
(per sensitive column), proxies, gates, limitations (the spec's plus those the run found), owners.
Pure: built from the run's results, no clock, so the card is as deterministic as the model.
"""

from __future__ import annotations

from typing import Any

from mlsteward.api import model as api_model


def build(
    *,
    name: str | None,
    spec: api_model.ModelSpec,
    dataset: dict[str, Any],
    split: dict[str, Any],
    estimator: dict[str, Any],
    metrics: dict[str, float],
    fairness: dict[str, Any],
    proxies: dict[str, Any],
    gates: dict[str, Any],
    policy_exceptions: list[dict[str, str]],
) -> dict[str, Any]:
    found: list[str] = []
    for column, report in proxies.items():
        if report.get("flagged"):
            found.append(
                f"The features predict the sensitive column {column!r} with ROC AUC {report['roc_auc']:.3f} "
                f"(above {report['threshold']}): the model can act on it through proxies."
            )
    for column, report in fairness.items():
        if report.get("small_groups"):
            found.append(
                f"Groups of {column!r} below {report['min_group_size']} holdout rows "
                f"({', '.join(report['small_groups'])}): fairness for them is not established."
            )
        if report.get("status") == "failed":
            failed = [c["gate"] for c in report.get("checks", []) if c["status"] == "failed"]
            found.append(f"Fairness gates failed for {column!r}: {', '.join(failed)}.")
    if not gates["promotable"]:
        found.append("This version did not pass every gate and is not promotable.")
    return {
        "schema": "mlsteward.io/card/v1",
        "name": name,
        "task": spec.task,
        "intended_use": spec.card.intended_use,
        "owners": list(spec.card.owners),
        "data": {
            **dataset,
            "target": spec.dataset.target,
            "features": list(spec.dataset.features),
            "categorical": list(spec.dataset.categorical),
            "sensitive": list(spec.dataset.sensitive),
            "split": split,
        },
        "model": {**estimator, "format": "ONNX (skl2onnx)"},
        "metrics": metrics,
        "fairness": fairness,
        "proxies": proxies,
        "gates": gates,
        "policy": {
            "preset": spec.protected_attributes.preset,
            "additional": list(spec.protected_attributes.additional),
            "exceptions_used": policy_exceptions,
        },
        "limitations": [*spec.card.limitations, *found],
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "n/a" if value is None else str(value)


def to_markdown(card: dict[str, Any]) -> str:
    data = card["data"]
    lines = [
        f"# Model card: {card['name'] or 'unnamed model'}",
        "",
        "## Intended use",
        "",
        card["intended_use"] or "_Not stated in the spec._",
        "",
        "## Owners",
        "",
        *([f"- {owner}" for owner in card["owners"]] or ["_Not stated in the spec._"]),
        "",
        "## Data",
        "",
        f"- Source: `{data['uri']}` (sha256 `{data['sha256']}`, {data['rows']} rows)",
        f"- Split: {data['split']['train_rows']} training rows, {data['split']['test_rows']} holdout rows "
        f"(seed {data['split']['seed']}, {'stratified' if data['split']['stratified'] else 'random'})",
        f"- Target: `{data['target']}`; features: {', '.join(f'`{f}`' for f in data['features'])}",
        f"- Sensitive columns (never inputs): {', '.join(f'`{s}`' for s in data['sensitive']) or 'none'}",
        "",
        "## Model",
        "",
        f"- {card['task'].capitalize()} with `{card['model']['class_name']}`, exported to ONNX",
        "",
        "## Holdout metrics",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {name} | {_fmt(value)} |" for name, value in sorted(card["metrics"].items())],
        "",
        "## Fairness (holdout)",
        "",
    ]
    if not card["fairness"]:
        lines += ["_No sensitive columns were given._", ""]
    for column, report in card["fairness"].items():
        lines += [f"### `{column}`: {report['status']}", ""]
        if "groups" in report:
            lines += ["| group | size | selection rate | TPR | FPR |", "|---|---|---|---|---|"]
            for group, entry in report["groups"].items():
                lines.append(
                    f"| {group} | {entry['size']} | {_fmt(entry.get('selection_rate'))} | "
                    f"{_fmt(entry.get('true_positive_rate'))} | {_fmt(entry.get('false_positive_rate'))} |"
                )
            lines += [
                "",
                f"Demographic parity difference {_fmt(report.get('demographic_parity_difference'))}, "
                f"ratio {_fmt(report.get('demographic_parity_ratio'))}; equalized odds difference "
                f"{_fmt(report.get('equalized_odds_difference'))}.",
            ]
        if report.get("note"):
            lines.append(report["note"])
        lines.append("")
    lines += ["## Proxies", "", "| sensitive column | ROC AUC | flagged |", "|---|---|---|"]
    lines += [
        f"| {column} | {_fmt(r.get('roc_auc'))} | {'yes' if r.get('flagged') else 'no'} |"
        for column, r in card["proxies"].items()
    ]
    gates = card["gates"]
    lines += [
        "",
        "## Gates",
        "",
        f"- Quality: {gates['quality']}; fairness: {gates['fairness']}; "
        f"promotable: {'yes' if gates['promotable'] else 'no'}",
        "",
        "## Limitations",
        "",
        *([f"- {item}" for item in card["limitations"]] or ["_None stated._"]),
        "",
    ]
    return "\n".join(lines)
