"""The ``/report`` page: drift per column for people, as self-contained HTML with inline SVG.

Pure: renders a string from the monitor's state and ``now``; no scripts, no external assets,
every name from the data escaped. Columns come worst first (drifting, then by score over
threshold), each with the reference's and the window's histograms side by side.
"""

from __future__ import annotations

import datetime
import html

import numpy as np
from numpy.typing import NDArray

from mlsteward.monitoring import monitors, profiles, summaries, verdicts

_WIDTH, _HEIGHT, _PAD = 300, 120, 18
_COLORS = {"drift": "#c62828", "ok": "#2e7d32", "insufficient_data": "#8d6e00"}
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:24px 0 8px}
.meta{color:#555;font-size:13px} table{border-collapse:collapse;font-size:13px;background:#fff}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;margin:10px 0}
.card h3{font-size:15px;margin:0 0 6px} .charts{display:flex;gap:24px;flex-wrap:wrap}
.charts figure{margin:0} figcaption{font-size:12px;color:#555} .scores{font-size:12px;color:#333}
"""


def render(monitor: monitors.Monitor, now: float) -> str:
    evaluation = monitor.evaluation
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>mlsteward drift report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Drift report</h1>",
        f"<p class=meta>Reference {_e(monitor.digest[:12] or 'unknown')} ({monitor.reference.rows} rows, "
        f"{_e(monitor.reference.task)}) &middot; generated {_time(now)} &middot; "
        f"{monitor.total.rows} rows accepted, {sum(monitor.rejected_batches.values())} batches rejected</p>",
    ]
    if evaluation is None:
        parts.append(
            f"<p>{_badge('insufficient_data')} No window has closed yet: "
            f"{monitor.windows.current.rows} rows in the window in progress "
            f"(a verdict needs {monitor.rules.min_samples}).</p>"
        )
        parts += [_card_in_progress(monitor, column) for column in monitor.layout.columns]
    else:
        parts.append(_overview(monitor, evaluation))
        parts += [_card(verdict, evaluation.current) for verdict in evaluation.columns]
    parts.append("</body></html>")
    return "".join(parts)


def _overview(monitor: monitors.Monitor, evaluation: verdicts.Evaluation) -> str:
    rules = monitor.rules
    rows = [
        f"<p>{_badge(evaluation.state)} window {evaluation.number}: {evaluation.rows} rows, "
        f"{_time(evaluation.started)} to {_time(evaluation.ended)}; "
        f"{evaluation.drifting_features} of {sum(c.column.role == 'feature' for c in evaluation.columns)} "
        f"features drift; breached {evaluation.consecutive} window(s) in a row "
        f"({'drifting' if evaluation.drifting else 'not drifting'}: needs {rules.consecutive_windows}).</p>"
    ]
    report = monitor.window_report
    if report is not None:
        performance = report.performance
        cells = [f"<td>{performance.labeled}</td>"] + [
            f"<td>{'&ndash;' if v is None else f'{v:.4f}'}</td>"
            for v in (performance.accuracy, performance.roc_auc, performance.rmse)
        ]
        rows.append(
            "<h2>Performance (delayed labels)</h2><table><tr><th>labeled</th><th>accuracy</th>"
            f"<th>ROC AUC</th><th>RMSE</th></tr><tr>{''.join(cells)}</tr></table>"
        )
        for fairness in report.fairness:
            groups = "".join(
                f"<tr><td>{_e(g)}</td><td>{n}</td><td>{fairness.selection_rate.get(g, 0.0):.3f}</td></tr>"
                for g, n in fairness.rows.items()
            )
            gap = "&ndash;" if fairness.parity_difference is None else f"{fairness.parity_difference:.3f}"
            rows.append(
                f"<h2>Fairness: {_e(fairness.attribute)}</h2><p>parity difference {gap} "
                f"(limit {fairness.limit})</p><table><tr><th>group</th><th>rows</th>"
                f"<th>selection rate</th></tr>{groups}</table>"
            )
    rows.append("<h2>Columns, worst first</h2>")
    return "".join(rows)


def _card(verdict: verdicts.ColumnVerdict, current: summaries.Summary) -> str:
    column = verdict.column
    scores = ", ".join(f"{_e(test)} {score.value:.4f}" for test, score in verdict.scores.items())
    return (
        f"<section class=card><h3>{_e(column.key)} {_badge(verdict.state)}"
        f"{' <b>drifting</b>' if verdict.drifting else ''}</h3>"
        f"<div class=scores>{_e(column.kind)}; {_e(verdict.test)} = <b>{verdict.score:.4f}</b> "
        f"(threshold {verdict.threshold}); all tests: {scores}</div>"
        f"{_charts(column, current.column(column))}</section>"
    )


def _card_in_progress(monitor: monitors.Monitor, column: summaries.Column) -> str:
    counts = monitor.windows.current.summary.column(column)
    return (
        f"<section class=card><h3>{_e(column.key)} {_badge('insufficient_data')}</h3>"
        f"{_charts(column, counts)}</section>"
    )


def _charts(column: summaries.Column, current: NDArray[np.int64]) -> str:
    names = _bucket_titles(column)
    labels = _bucket_labels(column)
    reference = column.reference.counts
    top = max(_max_share(reference), _max_share(current), 1e-9)
    return (
        "<div class=charts>"
        f"<figure>{_bars(reference, names, labels, top, '#5c6bc0')}"
        f"<figcaption>reference ({int(reference.sum())} rows)</figcaption></figure>"
        f"<figure>{_bars(current, names, labels, top, '#ef6c00')}"
        f"<figcaption>current window ({int(current.sum())} rows)</figcaption></figure></div>"
    )


def _bars(counts: NDArray[np.int64], names: list[str], labels: list[str], top: float, color: str) -> str:
    total = float(counts.sum())
    n = len(counts)
    slot = (_WIDTH - 2) / n
    bars = []
    for i, count in enumerate(counts):
        share = count / total if total else 0.0
        height = (_HEIGHT - _PAD) * share / top
        x = 1 + i * slot
        bars.append(
            f'<rect x="{x:.1f}" y="{_HEIGHT - _PAD - height:.1f}" width="{max(slot - 1, 1):.1f}" '
            f'height="{height:.1f}" fill="{color}"><title>{_e(names[i])}: {share:.3%}</title></rect>'
        )
    axis = [f'<line x1="0" y1="{_HEIGHT - _PAD}" x2="{_WIDTH}" y2="{_HEIGHT - _PAD}" stroke="#999"/>']
    for i, label in enumerate(labels):
        text = label[: max(int(slot // 6), 1)]
        axis.append(
            f'<text x="{1 + (i + 0.5) * slot:.1f}" y="{_HEIGHT - 5}" font-size="9" '
            f'text-anchor="middle" fill="#444">{_e(text)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'role="img">{"".join(bars)}{"".join(axis)}</svg>'
    )


def _bucket_titles(column: summaries.Column) -> list[str]:
    reference = column.reference
    if isinstance(reference, profiles.NumericReference):
        edges = reference.edges
        bins = [
            f"[{edges[i]:.4g}, {edges[i + 1]:.4g}{']' if i == len(edges) - 2 else ')'}"
            for i in range(len(edges) - 1)
        ]
        return [f"< {edges[0]:.4g}", *bins, f"> {edges[-1]:.4g}", "missing"]
    return list(column.bucket_names())


def _bucket_labels(column: summaries.Column) -> list[str]:
    """Short labels under the bars: < 1 .. k > NA for numerics, the values for categoricals."""
    if column.kind == "numeric":
        k = column.size - 3
        return ["<", *(str(i) for i in range(1, k + 1)), ">", "NA"]
    return [*column.bucket_names()[:-3], "other", "new", "NA"]


def _max_share(counts: NDArray[np.int64]) -> float:
    total = float(counts.sum())
    return float(counts.max()) / total if total else 0.0


def _badge(state: str) -> str:
    color = _COLORS.get(state, "#555")
    return f'<span class=badge style="background:{color}">{_e(state.replace("_", " "))}</span>'


def _time(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(text: str) -> str:
    return html.escape(text, quote=True)
