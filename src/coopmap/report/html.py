"""The report page: one HTML file with inline CSS that shows PNGs from its own folder by relative links.

Every string from the inputs goes through ``html.escape``; numbers are printed by ``columns.fmt`` (4 significant
digits, '–' for NaN) and each cell carries the exact value in its ``title`` (hover) and ``data-value``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from coopmap.report.collect import FilterOut, MetricRow, Verdict, mode_means
from coopmap.report.columns import KEY_METRICS, direction, fmt, fmt_delta, label, ordered_columns, to_float

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 16px 24px; color: #222; background: #fff; line-height: 1.4; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
code, .path { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f0f3f7; text-align: center; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { font-weight: bold; background: #eef7ee; }
tr.baseline td { background: #f7f7f7; }
tbody tr:nth-child(even) td:not(.best) { background: #fafafa; }
.d { display: block; font-size: 11px; } .good { color: #1a7f37; } .bad { color: #c62828; } .same { color: #777; }
.verdict { border-radius: 6px; padding: 8px 12px; margin: 6px 0; border: 1px solid; font-size: 14px; }
.verdict.good { background: #e8f5e9; border-color: #66bb6a; color: #1b3d1f; }
.verdict.bad { background: #ffebee; border-color: #e57373; color: #4a1414; }
.verdict.none { background: #f5f5f5; border-color: #bbb; }
.badge { display: inline-block; font-weight: bold; font-size: 12px; padding: 2px 8px; border-radius: 10px;
         color: #fff; margin-right: 8px; }
.verdict.good .badge { background: #2e7d32; } .verdict.bad .badge { background: #c62828; }
.verdict.none .badge { background: #777; }
.notes { background: #fff8e1; border: 1px solid #ffcc80; border-radius: 6px; padding: 6px 12px; font-size: 13px; }
.missing { color: #8a4b00; background: #fff3e0; border-left: 4px solid #ffb74d; padding: 4px 10px; }
.wide { overflow-x: auto; max-width: 100%; }
figure { margin: 8px 0 16px; } figure img { max-width: 100%; height: auto; border: 1px solid #e5e5e5; }
figcaption { font-size: 12px; color: #555; }
details summary { cursor: pointer; color: #1565c0; margin: 4px 0; }
.small { font-size: 12px; color: #555; }
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def tone(metric: str, delta) -> str:
    """'good' / 'bad' / 'same': whether a change of ``delta`` in ``metric`` is an improvement."""
    try:
        d = float(delta)
    except (TypeError, ValueError):
        return "same"
    good = direction(metric) * d if math.isfinite(d) else 0.0
    return "good" if good > 0 else "bad" if good < 0 else "same"


def num_cell(value, css: str = "num", delta=None, metric: str = "", signed: bool = False) -> str:
    """A right-aligned number cell: formatted value (``signed``: with its sign), exact value on hover and in
    ``data-value``, optional coloured delta in brackets."""
    exact = repr(float(value)) if isinstance(value, (int, float)) else ""
    text = fmt_delta(value) if signed else fmt(value)
    extra = ""
    if delta is not None and isinstance(delta, float) and math.isfinite(delta):
        extra = f'<span class="d {tone(metric, delta)}">({esc(fmt_delta(delta))})</span>'
    return f'<td class="{css}" title="{esc(exact)}" data-value="{esc(exact)}">{esc(text)}{extra}</td>'


def figure(src: str, caption: str, alt: str | None = None) -> str:
    return (f'<figure><img src="{esc(src)}" alt="{esc(alt or caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def missing(text: str) -> str:
    return f'<p class="missing">{esc(text)}</p>'


#: css class and badge of each verdict (``coopmap ablate``); files with only ``better`` map True/False/None
VERDICT_STYLE = {"win": ("good", "WIN"), "loss": ("bad", "LOSS"), "no evidence": ("none", "NO EVIDENCE"),
                 "inconclusive": ("none", "INCONCLUSIVE")}


def verdicts_html(verdicts: Sequence[Verdict], baseline: str | None) -> str:
    """Every verdict, failures as prominent as successes, with a one-line tally first."""
    if not verdicts:
        return missing("No verdicts: the inputs hold no verdicts.json (only `coopmap ablate` writes one).")
    n_good = sum(v.better is True for v in verdicts)
    against = "its predecessor" if any(v.predecessor for v in verdicts) else \
        "the baseline" + (f" ({esc(baseline)})" if baseline else "")
    parts = [f"<p><b>{n_good} of {len(verdicts)}</b> comparison(s) are a win against {against} on the metric "
             "they target.</p>"]
    for v in verdicts:
        kind, badge = VERDICT_STYLE.get(v.verdict) or {True: ("good", "BEATS BASELINE"),
                                                       False: ("bad", "DOES NOT BEAT BASELINE")}.get(
            v.better, ("none", "NO VERDICT"))
        change = v.value - v.baseline
        numbers = (f"targets {esc(v.targets)} ({esc(v.mode)}): {esc(fmt(v.value))} vs "
                   f"{esc(v.predecessor or 'baseline')} {esc(fmt(v.baseline))}, change {esc(fmt_delta(change))}")
        text = esc(v.text) if v.text else numbers
        parts.append(f'<div class="verdict {kind}"><span class="badge">{badge}</span><b>{esc(v.variant)}</b>: '
                     f'{text}<br><span class="small">{numbers}</span></div>')
    return "\n".join(parts)


def _best(rows: Sequence[MetricRow], col: str) -> float | None:
    sign = direction(col)
    vals = [r.values.get(col, math.nan) for r in rows]
    vals = [v for v in vals if math.isfinite(v)]
    if sign == 0 or len(vals) < 2:
        return None
    return max(vals) if sign > 0 else min(vals)


def metric_table(rows: Sequence[MetricRow], columns: Sequence[str], baseline: str | None = None) -> str:
    """Variants (rows) x columns of one mode; the best value per column in bold; deltas to the baseline."""
    head = "".join(f"<th>{esc(label(c))}</th>" for c in columns)
    best = {c: _best(rows, c) for c in columns}
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.values.get(c, math.nan)
            css = "num best" if best[c] is not None and v == best[c] else "num"
            cells.append(num_cell(v, css, r.deltas.get(c) if r.variant != baseline else None, c))
        tag = ' class="baseline"' if r.variant == baseline else ""
        name = esc(r.variant) + (" <span class='small'>(baseline)</span>" if r.variant == baseline else "")
        body.append(f"<tr{tag}><td>{name}</td>{''.join(cells)}</tr>")
    return (f'<div class="wide"><table class="metrics"><thead><tr><th>variant</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def metric_tables_html(table: Sequence[MetricRow], baseline: str | None) -> str:
    """Per mode: the key-metric table, then every column in a collapsed table."""
    if not table:
        return missing("No metrics: give an eval or ablation folder.")
    parts = []
    has_deltas = any(r.deltas for r in table)
    if has_deltas:
        parts.append(f"<p class='small'>In brackets: difference to the baseline ({esc(baseline or '?')}), same "
                     "mode; green = better, red = worse. Bold: best in the column.</p>")
    for mode in dict.fromkeys(r.mode for r in table):
        rows = [r for r in table if r.mode == mode]
        all_cols = ordered_columns([c for r in rows for c in r.values], ("n_frames", "n_skipped", *KEY_METRICS))
        key_cols = [c for c in ("n_frames", *KEY_METRICS) if c in all_cols]
        parts.append(f"<h3>mode: {esc(mode)}</h3>")
        parts.append(metric_table(rows, key_cols, baseline))
        if len(all_cols) > len(key_cols):
            parts.append(f"<details><summary>all {len(all_cols)} columns ({esc(mode)})</summary>"
                         f"{metric_table(rows, all_cols, baseline)}</details>")
    sources = sorted({r.source for r in table})
    parts.append("<p class='small'>From: " + ", ".join(f"<span class='path'>{esc(s)}</span>" for s in sources)
                 + " (eval folders: mean over the mode's ok frames).</p>")
    return "\n".join(parts)


def filter_table_html(f: FilterOut) -> str:
    """Per mode: mean before / after filtering of every scored metric, and the change."""
    parts = [f"<p class='small'>Filter output <span class='path'>{esc(f.path)}</span>: means over ok frames of "
             "filter_metrics.csv.</p>"]
    for mode, values in mode_means(f.rows).items():
        names = [c[: -len("_before")] for c in values
                 if c.endswith("_before") and c[: -len("_before")] + "_after" in values]
        rows = []
        for n in names:
            before, after = values[f"{n}_before"], values[f"{n}_after"]
            change = after - before if math.isfinite(before) and math.isfinite(after) else math.nan
            rows.append(f"<tr><td>{esc(label(n))}</td>{num_cell(before)}{num_cell(after)}"
                        f"{num_cell(change, f'num {tone(n, change)}', signed=True)}</tr>")
        parts.append(f"<h3>mode: {esc(mode)} ({fmt(values['n_frames'])} frame(s))</h3><table><thead><tr>"
                     "<th>metric</th><th>before</th><th>after</th><th>change</th></tr></thead>"
                     f"<tbody>{''.join(rows)}</tbody></table>")
    return "\n".join(parts)


def row_table(row: dict[str, str], columns: Sequence[str]) -> str:
    """One frame's metric values (a single-row table)."""
    cols = [c for c in columns if c in row]
    head = "".join(f"<th>{esc(label(c))}</th>" for c in cols)
    cells = "".join(num_cell(to_float(row[c])) for c in cols)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody><tr>{cells}</tr></tbody></table></div>'


def page(title: str, intro: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document; ``sections`` are (anchor id, heading, body html)."""
    nav = " ".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    body = "\n".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>\n{b}\n</section>' for a, h, b in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n<h1>{esc(title)}</h1>\n{intro}\n"
            f"<nav>{nav}</nav>\n{body}\n</body></html>\n")
