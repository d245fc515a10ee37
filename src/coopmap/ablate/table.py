"""The ablation table: per row (reference, start, variant) and mode, the seed mean and spread of every metric's
frame mean, the differences to the baseline, and the verdicts of :mod:`coopmap.ablate.stats`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coopmap.ablate.presets import BASELINE, COMPARISONS, HIGHER_IS_BETTER, METRICS, trivial_references
from coopmap.ablate.stats import INCONCLUSIVE, LOSS, WIN, beats_on_every_seed, judge, paired_differences
from coopmap.csvio import AppendCsv
from coopmap.evaluation.outputs import atomic_write_text, row_key

#: frames[name][seed] = {frame key (scenario, timestamp, ego_id, mode): {metric: value}}; seed None = no seeds
Frames = dict[str, dict[int | None, dict[tuple, dict[str, float]]]]
MODES = ("single", "coop")


def _float(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def read_frames(eval_dir: Path) -> dict[tuple, dict[str, float]]:
    """The ok rows of an eval folder's coop_metrics.csv, by frame key, metric values as floats."""
    out = {}
    for r in AppendCsv(eval_dir / "coop_metrics.csv").rows():
        if r.get("status") == "ok":
            out[row_key(r)] = {k: _float(v) for k, v in r.items()}
    return out


def collect_frames(eval_root: Path, single: Sequence[str], variants: Sequence[str], seeds: Sequence[int]) -> Frames:
    """Per-frame metrics of the unseeded rows (``eval_root/<name>``) and of every variant and seed
    (``eval_root/<variant>/s<seed>``)."""
    frames: Frames = {name: {None: read_frames(eval_root / name)} for name in single}
    for v in variants:
        frames[v] = {s: read_frames(eval_root / v / f"s{s}") for s in seeds}
    return frames


def _mode_values(rows: dict[tuple, dict[str, float]], mode: str, metric: str) -> np.ndarray:
    values = np.array([r.get(metric, math.nan) for k, r in rows.items() if k[3] == mode], dtype=np.float64)
    return values[np.isfinite(values)]


def _per_seed_value(rows: dict[tuple, dict[str, float]], mode: str, metric: str, worst_k: int) -> float:
    if metric == "worst_pose_abs_t":
        v = np.sort(_mode_values(rows, mode, "pose_abs_t"))[::-1][:worst_k]
    else:
        v = _mode_values(rows, mode, metric)
    return float(v.mean()) if len(v) else math.nan


def summary_rows(frames: Frames, worst_k: int) -> list[dict]:
    """One row per name and mode: ``<metric>`` = mean over seeds of the frame mean, ``<metric>_sd`` = its spread
    over seeds (std, ddof 1; NaN with one seed), ``d_<metric>`` = difference to the baseline's value."""
    rows = []
    for name, by_seed in frames.items():
        for mode in MODES:
            if not any(k[3] == mode for r in by_seed.values() for k in r):
                continue
            row: dict = {"variant": name, "mode": mode, "n_seeds": sum(s is not None for s in by_seed) or 1,
                         "n_frames": min(sum(k[3] == mode for k in r) for r in by_seed.values())}
            for m in METRICS:
                per_seed = np.array([_per_seed_value(r, mode, m, worst_k) for r in by_seed.values()])
                finite = per_seed[np.isfinite(per_seed)]
                row[m] = float(finite.mean()) if len(finite) else math.nan
                row[f"{m}_sd"] = float(finite.std(ddof=1)) if len(finite) >= 2 else math.nan
            rows.append(row)
    base = {r["mode"]: r for r in rows if r["variant"] == BASELINE}
    for r in rows:
        b = base.get(r["mode"])
        for m in METRICS:
            r[f"d_{m}"] = (r[m] - b[m]) if b is not None else math.nan
    return rows


def frame_values(rows: dict[tuple, dict[str, float]], metric: str, mode: str) -> dict[tuple, float]:
    """``metric`` by frame key, for the frames of ``mode`` that have it."""
    return {k: r[metric] for k, r in rows.items() if k[3] == mode and metric in r}


def reference_differences(frames: Frames, name: str, ref: str, metric: str, mode: str) -> list[np.ndarray]:
    """Per seed of ``name``: its frame differences to the (unseeded) reference row ``ref``, paired by frame."""
    r = frame_values(frames[ref][None], metric, mode)
    return [paired_differences(frame_values(rows, metric, mode), r) for rows in frames[name].values()]


def _references_with_values(frames: Frames, metric: str, mode: str) -> list[str]:
    """The trivial reference rows of ``metric`` in ``mode`` that were evaluated and have a finite value."""
    names = [f"ref_{n}" for n in trivial_references(metric, mode)]
    return [n for n in names if n in frames
            and any(math.isfinite(v) for v in frame_values(frames[n][None], metric, mode).values())]


def judge_all(frames: Frames, rows: list[dict]) -> list[dict]:
    """A verdict per comparison of presets.COMPARISONS, with the numbers behind it (verdicts.json entries)."""
    by = {(r["variant"], r["mode"]): r for r in rows}
    out = []
    for c in COMPARISONS:
        if c.variant not in frames or c.predecessor not in frames:
            continue
        seeds = [s for s in frames[c.variant] if s in frames[c.predecessor]]
        diffs = [paired_differences(frame_values(frames[c.variant][s], c.metric, c.mode),
                                    frame_values(frames[c.predecessor][s], c.metric, c.mode)) for s in seeds]
        value = by.get((c.variant, c.mode), {}).get(c.metric, math.nan)
        base = by.get((c.predecessor, c.mode), {}).get(c.metric, math.nan)
        ref_names = _references_with_values(frames, c.metric, c.mode)
        refs = [by[(n, c.mode)][c.metric] for n in ref_names]
        trivial = (min(refs) if c.lower_is_better else max(refs)) if refs else None
        beats = tuple(all(beats_on_every_seed(reference_differences(frames, side, n, c.metric, c.mode),
                                              c.lower_is_better) for n in ref_names)
                      for side in (c.variant, c.predecessor)) if ref_names else None
        j = judge(diffs, c.lower_is_better, beats_trivial=beats, trivial_value=trivial)
        cis = "; ".join(f"s{s}: {m:+.3g} [{lo:+.3g}, {hi:+.3g}]" for s, (m, lo, hi) in zip(seeds, j.cis))
        text = (f"{c.variant} vs {c.predecessor}, {c.metric} ({c.mode}): {j.verdict} - {value:.4g} vs "
                f"{base:.4g}; difference per seed (95% CI over {j.n_frames} frames): {cis}; seed mean "
                f"{j.mean_diff:+.3g}, seed spread {j.seed_spread:.3g}; best trivial reference "
                f"{'-' if trivial is None else f'{trivial:.4g}'} ({j.reason}). Expected: {c.expectation}.")
        out.append({"variant": c.variant, "predecessor": c.predecessor, "targets": c.metric, "mode": c.mode,
                    "baseline": base, "value": value, "verdict": j.verdict,
                    "better": True if j.verdict == WIN else False if j.verdict == LOSS else None,
                    "mean_diff": j.mean_diff, "seed_spread": j.seed_spread, "trivial": trivial,
                    "beats_trivial": None if beats is None else {"variant": beats[0], "predecessor": beats[1]},
                    "ci_per_seed": [list(ci) for ci in j.cis], "seeds": seeds, "n_frames": j.n_frames,
                    "expectation": c.expectation, "text": text})
    return out


def _fmt(x) -> str:
    if isinstance(x, float):
        return "–" if not math.isfinite(x) else f"{x:.4g}"
    return str(x)


def _cell(r: dict, m: str) -> str:
    sd = r.get(f"{m}_sd", math.nan)
    return _fmt(r[m]) + (f" ± {sd:.2g}" if isinstance(sd, float) and math.isfinite(sd) else "")


BADGE = {WIN: "✅ win", LOSS: "❌ loss", INCONCLUSIVE: "❔ inconclusive"}


def write_outputs(out_dir: Path, rows: list[dict], judged: list[dict], header_lines: list[str],
                  seeds: Sequence[int]) -> str:
    """ablation.csv, ablation.md and verdicts.json; returns the markdown."""
    columns = ["variant", "mode", "n_seeds", "n_frames", *METRICS, *(f"{m}_sd" for m in METRICS),
               *(f"d_{m}" for m in METRICS)]
    AppendCsv(out_dir / "ablation.csv", columns).rewrite(rows)
    shown = ["variant", "n_seeds", "n_frames", *METRICS]
    lines = [*header_lines, ""]
    for mode in MODES:
        lines += [f"## {mode}", "", "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
        for r in (r for r in rows if r["mode"] == mode):
            lines.append("| " + " | ".join([_fmt(r[c]) for c in shown[:3]] + [_cell(r, m) for m in METRICS]) + " |")
        lines.append("")
    better = ", ".join(f"{m} (higher)" for m in METRICS if m in HIGHER_IS_BETTER)
    lines += [f"Values: mean over seeds {list(seeds)} of each seed's frame mean, ± the spread over seeds (std). "
              f"`ref_*` rows are the oracle with knobs (docs/ablation.md); lower is better except {better}.", "",
              "## Verdicts (each improvement against its predecessor)", ""]
    lines += [f"- {BADGE.get(v['verdict'], '➖ no evidence')}: {v['text']}" for v in judged]
    md = "\n".join(lines) + "\n"
    atomic_write_text(out_dir / "ablation.md", md)
    atomic_write_text(out_dir / "verdicts.json", json.dumps(judged, indent=1, allow_nan=True))
    return md
