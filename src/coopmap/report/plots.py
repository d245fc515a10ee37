"""Training curves and metric bar charts as PNG files (matplotlib's object API on the Agg canvas: no pyplot,
no global state, no display needed).

Curves show the raw logged values faintly and a centred running mean on top.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from coopmap.report.collect import MetricRow, RunLog
from coopmap.report.columns import direction, fmt, label

#: train_log.csv columns that are neither a loss term nor a monitor.
_BOOKKEEPING = {"step", "step_time", "nonfinite_skipped"}
#: monitors drawn after the losses, in this order.
_MONITORS = ("scale_err", "pose_abs_t", "pose_abs_r", "lr", "grad_norm")
MODE_COLORS = {"single": "#9ecae1", "coop": "#08519c"}


def running_mean(y, window: int) -> np.ndarray:
    """Centred running mean over ``window`` samples (shrinking at the ends), NaN values left out; a position
    whose window holds no finite value is NaN. (N,) -> (N,)."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n, window = len(y), max(int(window), 1)
    ok = np.isfinite(y)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(ok)])
    i = np.arange(n)
    lo = np.clip(i - window // 2, 0, n)
    hi = np.clip(i - window // 2 + window, 0, n)
    cnt = ccnt[hi] - ccnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (csum[hi] - csum[lo]) / cnt
    out[cnt == 0] = np.nan
    return out


def smoothing_window(n: int) -> int:
    """About 1/25 of the points, odd, at least 1."""
    w = max(1, n // 25)
    return w if w % 2 else w + 1


def _grid(n: int, ncols: int = 4, panel=(3.6, 2.6), gaps=(0.6, 0.85), bottom: float = 0.55,
          top: float = 0.6) -> tuple[Figure, list]:
    """A figure of n panels (ncols across) with fixed margins in inches: much faster than a constrained layout
    for the ~30 panels of a run's loss terms. ``panel`` = (width, height) of a panel with its share of the gaps
    (``gaps`` = horizontal, vertical, inches)."""
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    left, right = 0.6, 0.2
    width = left + right + ncols * panel[0] - gaps[0]
    height = bottom + top + nrows * panel[1] - gaps[1]
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=gaps[0] / (panel[0] - gaps[0]), hspace=gaps[1] / (panel[1] - gaps[1]))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes[:n]


def _title(fig: Figure, text: str) -> None:
    fig.suptitle(text, fontsize=11, y=1 - 0.1 / fig.get_figheight(), va="top")


def _log_scale_fits(y: np.ndarray) -> bool:
    y = y[np.isfinite(y)]
    return y.size > 1 and bool((y > 0).all()) and y.max() / y.min() > 30


def draw_curve(ax, steps, y, title: str, color: str = "C0", name: str | None = None) -> None:
    """Raw values faintly, their running mean solid; log y when the values are positive and span > 30x."""
    steps, y = np.asarray(steps, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not np.isfinite(y).any():
        ax.text(0.5, 0.5, "no finite value", ha="center", va="center", transform=ax.transAxes, color="0.4")
    else:
        ax.plot(steps, y, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(steps, running_mean(y, smoothing_window(len(y))), color=color, linewidth=1.6, label=name)
        if _log_scale_fits(y):
            ax.set_yscale("log")
    _style(ax, title)


def _style(ax, title: str) -> None:
    ax.set_title(label(title), fontsize=9, pad=15)  # room for an axis offset text ("+1.2e1") below it
    ax.set_xlabel("step", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    fig.savefig(path, dpi=dpi)
    return path


def curve_columns(run: RunLog) -> tuple[list[str], list[str]]:
    """(main panels, term panels): loss/total, loss/<section>..., monitors; then every <section>/<term>."""
    cols = list(run.train)
    losses = (["loss/total"] if "loss/total" in cols else []) + [c for c in cols if c.startswith("loss/")
                                                                  and c != "loss/total"]
    main = losses + [c for c in _MONITORS if c in cols]
    terms = [c for c in cols if "/" in c and not c.startswith(("loss/", "val/")) and c not in _BOOKKEEPING]
    return main, terms


def plot_run_curves(run: RunLog, columns: Sequence[str], path: Path, dpi: int, title: str) -> Path:
    """One panel per column of train_log.csv (x: step)."""
    fig, axes = _grid(len(columns), ncols=5, panel=(3.1, 2.4))
    steps = run.train.get("step", np.arange(1, len(next(iter(run.train.values()))) + 1))
    for ax, col in zip(axes, columns):
        draw_curve(ax, steps, run.train[col], col)
    _title(fig, title)
    return _save(fig, path, dpi)


def plot_val_curves(run: RunLog, path: Path, dpi: int) -> Path:
    """One panel per val/<metric> of val_log.csv (markers: validation is sparse)."""
    cols = [c for c in run.val if c.startswith("val/") and c != "val/frames"]
    fig, axes = _grid(len(cols))
    for ax, col in zip(axes, cols):
        ax.plot(run.val["step"], run.val[col], marker="o", markersize=3, linewidth=1.2)
        _style(ax, col)
    _title(fig, f"{run.name}: validation")
    return _save(fig, path, dpi)


def plot_runs_compare(runs: Sequence[RunLog], path: Path, dpi: int) -> Path:
    """loss/total and the monitors of several runs, one smoothed line per run."""
    cols = [c for c in ("loss/total", "scale_err", "pose_abs_t", "pose_abs_r") if any(c in r.train for r in runs)]
    fig, axes = _grid(len(cols))
    for ax, col in zip(axes, cols):
        for i, run in enumerate(runs):
            if col in run.train:
                draw_curve(ax, run.train.get("step", np.arange(len(run.train[col]))), run.train[col], col,
                           color=f"C{i % 10}", name=run.name)
    if axes:
        axes[0].legend(fontsize=7)
    _title(fig, "runs compared (running means; raw values faint)")
    return _save(fig, path, dpi)


def _finite_values(values: dict, metric: str) -> list[float]:
    return [v[metric] for v in values.values() if math.isfinite(v.get(metric, math.nan))]


def plot_mode_bars(table: Sequence[MetricRow], metrics: Sequence[str], path: Path, dpi: int) -> Path:
    """One panel per metric: for every variant a bar per mode (single vs coop), value printed above it."""
    variants = list(dict.fromkeys(r.variant for r in table))
    modes = [m for m in ("single", "coop") if any(r.mode == m for r in table)]
    modes += [m for m in dict.fromkeys(r.mode for r in table) if m not in modes]
    value = {(r.variant, r.mode): r.values for r in table}
    fig, axes = _grid(len(metrics), ncols=3, panel=(max(3.8, 0.7 * len(variants) + 1.8), 3.6), gaps=(0.7, 1.5),
                      bottom=1.1, top=0.75)
    width = 0.8 / max(len(modes), 1)
    x = np.arange(len(variants))
    for ax, metric in zip(axes, metrics):
        for j, mode in enumerate(modes):
            ys = np.array([value.get((v, mode), {}).get(metric, math.nan) for v in variants], dtype=np.float64)
            pos = x + (j - (len(modes) - 1) / 2) * width
            ax.bar(pos, np.nan_to_num(ys, nan=0.0), width, label=mode,
                   color=MODE_COLORS.get(mode, f"C{j + 2}"), edgecolor="0.3", linewidth=0.5)
            for px, py in zip(pos, ys):
                ax.annotate(fmt(py, 3), (px, 0 if not math.isfinite(py) else py), ha="center", va="bottom",
                            fontsize=6, xytext=(0, 1), textcoords="offset points")
        better = {1: "higher is better", -1: "lower is better"}.get(direction(metric), "")
        ax.set_title(f"{label(metric)}  ({better})" if better else label(metric), fontsize=9, pad=15)
        ax.set_xticks(x, variants, rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        ax.margins(y=0.15)
        if min(_finite_values(value, metric), default=0.0) >= 0:  # bars of non-negative values start at 0
            ax.set_ylim(0.0, max(ax.get_ylim()[1], 1e-12))
    handles, names = axes[0].get_legend_handles_labels() if axes else ([], [])
    fig.legend(handles, names, loc="upper right", ncols=len(modes), fontsize=8, title="mode", title_fontsize=8)
    return _save(fig, path, dpi)
