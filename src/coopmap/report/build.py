"""``make_report(inputs, out_dir, options) -> index.html``: read the inputs, draw every figure, write the page.

Figures are planned first (one job per PNG), then drawn under a progress bar; a figure whose data is unavailable
(no saved clouds, data root gone, unreadable file) becomes a message on the page instead of an error.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from coopmap.errors import CoopmapError
from coopmap.report import html as H
from coopmap.report.collect import EvalOut, ReportInputs, RunLog, collect
from coopmap.report.columns import BAR_METRICS, KEY_METRICS, direction, fmt
from coopmap.report.frame_plots import plot_bev, plot_cameras
from coopmap.report.frames import (
    FrameLoader,
    WorstFrame,
    frame_title,
    load_clouds,
    load_filtered,
    worst_frames,
)
from coopmap.report.plots import (
    curve_columns,
    plot_mode_bars,
    plot_run_curves,
    plot_runs_compare,
    plot_val_curves,
)

#: per-frame columns shown above a worst frame's pictures.
FRAME_COLUMNS = ("n_agents", "n_views", *KEY_METRICS, "n_pred_points", "n_gt_points", "n_vehicles")


@dataclass
class ReportOptions:
    #: worst frames shown per eval folder.
    worst: int = 3
    #: metric that ranks the frames (worst = largest error, or smallest score such as fscore) and their mode.
    worst_by: str = "chamfer"
    worst_mode: str = "coop"
    #: eval folders (names) whose worst frames are drawn; None: those with a filter output, else all of them.
    frames_of: Sequence[str] | None = None
    dpi: int = 100
    #: most points of each cloud drawn in a BEV panel (a fixed random subset beyond).
    max_points: int = 200_000
    progress: bool = True


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.") or "x"


class Figures:
    """PNG jobs by file name; drawn by :meth:`run`; a job that fails on data becomes a message."""

    def __init__(self, out_dir: Path, dpi: int):
        self.out_dir, self.dpi = out_dir, dpi
        self.jobs: list[tuple[str, Callable[..., object], tuple]] = []
        self.errors: dict[str, str] = {}

    def add(self, name: str, draw: Callable[..., object], *args) -> str:
        """Plan ``draw(path, dpi, *args)``; returns the (unique) file name."""
        taken = {n for n, _, _ in self.jobs}
        stem, n = slug(name), 2
        name = f"{stem}.png"
        while name in taken:
            name, n = f"{stem}_{n}.png", n + 1
        self.jobs.append((name, draw, args))
        return name

    def run(self, progress: bool) -> None:
        from tqdm import tqdm

        for name, draw, args in tqdm(self.jobs, desc="report figures", unit="fig", disable=not progress,
                                     delay=1.0, dynamic_ncols=True):
            try:
                draw(self.out_dir / name, self.dpi, *args)
            except (CoopmapError, OSError) as err:
                self.errors[name] = str(err)
                (self.out_dir / name).unlink(missing_ok=True)

    def html(self, name: str | None, caption: str, unavailable: str) -> str:
        if name is None:
            return ""
        if name in self.errors:
            return H.missing(f"{unavailable}: {self.errors[name]}")
        return H.figure(name, caption)


def _draw_curves(path, dpi, run, cols, title):
    plot_run_curves(run, cols, path, dpi, title)


def _training_section(runs: Sequence[RunLog], figs: Figures) -> Callable[[], str]:
    plans = []
    if len(runs) > 1:
        plans.append(("compare", figs.add("runs_compared", lambda p, d: plot_runs_compare(runs, p, d))))
    for run in runs:
        main, terms = curve_columns(run)
        n = len(next(iter(run.train.values()), []))
        cur = figs.add(f"curves_{run.name}", _draw_curves, run, main, f"{run.name}: losses and monitors") \
            if main and n else None
        trm = figs.add(f"terms_{run.name}", _draw_curves, run, terms, f"{run.name}: loss terms") \
            if terms and n else None
        val = figs.add(f"val_{run.name}", lambda p, d, r=run: plot_val_curves(r, p, d)) \
            if "step" in run.val and len(run.val["step"]) else None
        plans.append((run, cur, trm, val, n))

    def body() -> str:
        if not runs:
            return H.missing("No training run among the inputs (a run folder holds train_log.csv).")
        parts = []
        for plan in plans:
            if plan[0] == "compare":
                parts.append(figs.html(plan[1], "All runs: running means of loss/total and the monitors "
                                                "(raw values faint).", "comparison unavailable"))
                continue
            run, cur, trm, val, n = plan
            parts.append(f"<h3>{H.esc(run.name)}</h3><p class='small'><span class='path'>{H.esc(run.path)}"
                         f"</span>: {n} logged steps</p>")
            if not n:
                parts.append(H.missing("train_log.csv has no complete row yet."))
            parts.append(figs.html(cur, "loss/total, each loss/<section>, scale_err, pose_abs_t/r, lr, grad_norm "
                                        "per logged step: raw (faint) and running mean.", "curves unavailable"))
            terms = figs.html(trm, "Every named loss term <section>/<term> (raw and running mean).",
                              "loss terms unavailable")
            if terms and len(runs) > 1:  # keep a page of several runs short: terms on demand
                terms = f"<details><summary>{H.esc(run.name)}: every loss term</summary>{terms}</details>"
            parts.append(terms)
            parts.append(figs.html(val, "Validation metrics (val_log.csv).", "validation curves unavailable"))
        return "\n".join(parts)

    return body


def _draw_bev(path, dpi, ev: EvalOut, wf: WorstFrame, max_points: int):
    clouds = load_clouds(ev.path, wf.key)
    filtered, note = None, None
    if ev.filter is not None:
        try:
            filtered = load_filtered(ev.filter, wf.key, clouds["pred_points"])
        except CoopmapError as err:
            note = f"no filtered cloud: {err}"
    title = f"{ev.name}: {frame_title(wf.key)}  ({wf.metric} = {fmt(wf.value)}, rank {wf.rank})"
    plot_bev(clouds, filtered, path, dpi, title, max_points, note)


def _draw_cameras(path, dpi, loader: FrameLoader, ev: EvalOut, wf: WorstFrame):
    cams = loader.cameras(ev, wf.key)
    plot_cameras(cams, path, dpi, f"{frame_title(wf.key)}: camera images (eval resolution) + sparse LiDAR depth")


def _frames_section(inputs: ReportInputs, opts: ReportOptions, figs: Figures) -> Callable[[], str]:
    names = [e.name for e in inputs.evals]
    chosen = list(opts.frames_of) if opts.frames_of else [e.name for e in inputs.evals if e.filter] or names
    unknown = [n for n in chosen if n not in names]
    loader, cams_done, plans = FrameLoader(), {}, []
    for ev in (e for e in inputs.evals if e.name in chosen):
        frames = worst_frames(ev, opts.worst, opts.worst_by, opts.worst_mode)
        for wf in frames:
            bev = figs.add(f"bev_{ev.name}_{wf.key[3]}_{wf.key[0]}_{wf.key[1]}_{wf.key[2]}", _draw_bev, ev, wf,
                           opts.max_points)
            data_key = (repr((ev.config or {}).get("data")), wf.key)
            if data_key not in cams_done:
                cams_done[data_key] = figs.add(f"cams_{wf.key[3]}_{wf.key[0]}_{wf.key[1]}_{wf.key[2]}",
                                               _draw_cameras, loader, ev, wf)
            plans.append((ev, wf, bev, cams_done[data_key]))
        if not frames and opts.worst > 0:
            plans.append((ev, None, None, None))

    def body() -> str:
        worst = "largest" if direction(opts.worst_by) < 0 else "smallest"
        parts = [f"<p>For each eval folder shown: its {opts.worst} ok frame(s) of mode "
                 f"<b>{H.esc(opts.worst_mode)}</b> with the {worst} <b>{H.esc(opts.worst_by)}</b> (from "
                 "coop_metrics.csv). BEV: ego LiDAR frame, x forward up, y left to the left; predicted points "
                 "coloured by height above the ground, GT LiDAR grey, GT boxes red (tick = heading).</p>"]
        if unknown:
            parts.append(H.missing(f"--frames-of names not among the eval folders ({', '.join(names)}): "
                                   f"{', '.join(unknown)}"))
        for ev, wf, bev, cams in plans:
            if wf is None:
                parts.append(H.missing(f"{ev.name}: no ok frame with a finite {opts.worst_by}."))
                continue
            parts.append(f"<h3>{H.esc(ev.name)} &middot; #{wf.rank}: {H.esc(frame_title(wf.key))} &middot; "
                         f"{H.esc(wf.metric)} = {H.esc(fmt(wf.value))}</h3>")
            parts.append(H.row_table(wf.row, FRAME_COLUMNS))
            parts.append(figs.html(bev, "Bird's-eye view, ±50 m" + (": before / after filtering" if ev.filter
                                                                     else ""), "BEV picture unavailable"))
            parts.append(figs.html(cams, "Camera images with their sparse LiDAR depth (dots coloured by depth).",
                                   "camera images unavailable"))
        if not plans:
            parts.append(H.missing("No eval folder among the inputs." if not inputs.evals else
                                   "No frame pictured (--worst 0)." if opts.worst == 0 else
                                   "None of the chosen eval folders has a frame to show."))
        return "\n".join(parts)

    return body


def _filter_body(inputs: ReportInputs) -> str:
    parts = []
    for ev in inputs.evals:
        if ev.filter is not None:
            parts.append(f"<h3>{H.esc(ev.name)}</h3>{H.filter_table_html(ev.filter)}")
    for f in inputs.filters:
        parts.append(f"<h3>{H.esc(f.name)} (eval folder unknown)</h3>{H.filter_table_html(f)}")
    return "\n".join(parts) or H.missing("No filter output among the inputs (coopmap filter writes "
                                         "filter_metrics.csv).")


def _intro(inputs: ReportInputs) -> str:
    from coopmap import __version__

    rows = "".join(f"<li>{H.esc(kind)}: <span class='path'>{H.esc(path)}</span></li>" for kind, path in
                   inputs.sources)
    notes = "".join(f"<li>{H.esc(n)}</li>" for n in inputs.notes)
    when = datetime.datetime.now().isoformat(timespec="seconds")
    out = f"<p class='small'>coopmap {H.esc(__version__)} &middot; {when} &middot; inputs:</p><ul>{rows}</ul>"
    return out + (f"<div class='notes'><b>Notes</b><ul>{notes}</ul></div>" if notes else "")


def make_report(paths: Sequence[str | Path], out_dir: str | Path, opts: ReportOptions | None = None) -> Path:
    """Write ``out_dir/index.html`` and its PNGs for the given run / eval / filter / ablation folders."""
    opts = opts or ReportOptions()
    inputs = collect(paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = Figures(out, opts.dpi)
    bar_metrics = [m for m in BAR_METRICS if any(m in r.values for r in inputs.table)]
    bars = figs.add("bars_single_vs_coop", lambda p, d: plot_mode_bars(inputs.table, bar_metrics, p, d)) \
        if bar_metrics else None
    training = _training_section(inputs.runs, figs)
    frames = _frames_section(inputs, opts, figs)
    figs.run(opts.progress)
    sections = [
        ("verdicts", "Verdicts", H.verdicts_html(inputs.verdicts, inputs.baseline)),
        ("metrics", "Metrics per mode", H.metric_tables_html(inputs.table, inputs.baseline)),
        ("bars", "Single vs cooperative", figs.html(bars, "Per variant: single (light) vs coop (dark).",
                                                    "bar charts unavailable") or H.missing("No metrics.")),
        ("filtering", "Filtering", _filter_body(inputs)),
        ("frames", "Worst frames", frames()),
        ("training", "Training", training()),
    ]
    page = H.page("coopmap report", _intro(inputs), sections)
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
