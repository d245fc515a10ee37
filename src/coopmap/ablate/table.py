"""The ablation table: per variant and mode, the evaluated means, differences to the baseline, and verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from coopmap.ablate.presets import BASELINE, METRICS, TARGETS
from coopmap.csvio import AppendCsv
from coopmap.evaluation.outputs import atomic_write_text


def _float(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def variant_rows(variant: str, eval_dir: Path, worst_k: int) -> list[dict]:
    """One row per mode of an evaluated variant: the mean of every metric over its ok frames."""
    rows = [r for r in AppendCsv(eval_dir / "coop_metrics.csv").rows() if r["status"] == "ok"]
    out = []
    for mode in ("single", "coop"):
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        row: dict = {"variant": variant, "mode": mode, "n_frames": len(mine)}
        for metric in METRICS[:-1]:
            values = np.array([_float(r[metric]) for r in mine])
            values = values[np.isfinite(values)]
            row[metric] = float(values.mean()) if len(values) else math.nan
        pose = np.sort([_float(r["pose_abs_t"]) for r in mine])[::-1]
        pose = pose[np.isfinite(pose)][:worst_k]
        row["worst_pose_abs_t"] = float(pose.mean()) if len(pose) else math.nan
        out.append(row)
    return out


def with_deltas(rows: list[dict]) -> list[dict]:
    """Add ``d_<metric>`` = value - baseline value (same mode) to every row."""
    base = {r["mode"]: r for r in rows if r["variant"] == BASELINE}
    for r in rows:
        b = base.get(r["mode"])
        for m in METRICS:
            r[f"d_{m}"] = (r[m] - b[m]) if b is not None else math.nan
    return rows


#: an improvement must change its target metric by at least this fraction of the baseline to count as beating it
MIN_RELATIVE_CHANGE = 0.01


def verdicts(rows: list[dict], min_change: float = MIN_RELATIVE_CHANGE) -> list[dict]:
    """For each improvement, whether it beat the baseline on the metric it targets, in plain words.

    "Beats" needs a change of at least ``min_change`` x |baseline| in the right direction; a smaller change is
    reported as no measurable difference (not a win).
    """
    by = {(r["variant"], r["mode"]): r for r in rows}
    out = []
    for variant, targets in TARGETS.items():
        for t in targets:
            value, base = by.get((variant, t.mode), {}).get(t.metric), by.get((BASELINE, t.mode), {}).get(t.metric)
            if value is None or base is None or not (math.isfinite(value) and math.isfinite(base)):
                better, text = None, f"{variant}: {t.metric} ({t.mode}) could not be compared (no finite value)"
            else:
                gain = (base - value) if t.lower_is_better else (value - base)
                better = gain > min_change * abs(base)
                verb = ("beats" if better else "does NOT beat") + (
                    f" (change within {min_change:.0%}: no measurable difference)" if abs(gain) <= min_change * abs(base)
                    else "")
                text = (f"{variant} {verb} the baseline on {t.metric} ({t.mode}): {value:.4g} vs {base:.4g} "
                        f"(expected: {t.expectation})")
            out.append({"variant": variant, "targets": t.metric, "mode": t.mode, "baseline": base, "value": value,
                        "better": better, "text": text})
    return out


def _fmt(x) -> str:
    if isinstance(x, float):
        return "–" if not math.isfinite(x) else f"{x:.4g}"
    return str(x)


def write_outputs(out_dir: Path, rows: list[dict], judged: list[dict], header_lines: list[str]) -> str:
    """ablation.csv, ablation.md and verdicts.json; returns the markdown."""
    columns = ["variant", "mode", "n_frames", *METRICS, *(f"d_{m}" for m in METRICS)]
    AppendCsv(out_dir / "ablation.csv", columns).rewrite(rows)
    shown = ["variant", "mode", "n_frames", *METRICS]
    lines = [*header_lines, "", "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for r in rows:
        cells = [_fmt(r[c]) for c in shown[:3]]
        for m in METRICS:
            d = r[f"d_{m}"]
            cells.append(_fmt(r[m]) + (f" ({d:+.3g})" if r["variant"] != BASELINE and math.isfinite(d) else ""))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Differences in parentheses are to the baseline `{BASELINE}` in the same mode.", "",
              "## Verdicts", ""]
    lines += [f"- {'✅' if v['better'] else '❌' if v['better'] is False else '❔'} {v['text']}" for v in judged]
    md = "\n".join(lines) + "\n"
    atomic_write_text(out_dir / "ablation.md", md)
    atomic_write_text(out_dir / "verdicts.json", json.dumps(judged, indent=1, allow_nan=True))
    return md
