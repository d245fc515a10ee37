"""``filter_frame`` (one frame) and ``run_filter`` (an eval output, resumable).

Order (docs/filtering.md): 1 range crop, 2 height band, 3 confidence percentile, 4 voxel downsampling,
5 statistical outlier removal (the single-frame filters), then 6 multi-frame support against the K previous
available frames' single-frame-filtered clouds mapped into the current ego LiDAR frame. Box rule: points inside
the frame's vehicle boxes (+ margin) are exempt from the two statistical filters, 5 and 6 (a mover has no
multi-frame support; a far vehicle of fewer than k points is an SOR outlier by construction). Every point is in
the ego LiDAR frame, right-handed (x forward, y left, z up).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coopmap.csvio import AppendCsv
from coopmap.errors import CoopmapError, DataError
from coopmap.evaluation.outputs import (
    KEY_COLUMNS,
    atomic_write_text,
    remove_stale_temporaries,
    row_key,
    sort_rows,
)
from coopmap.filtering import filters as F
from coopmap.filtering.config import FilterConfig
from coopmap.filtering.export import export_cloud
from coopmap.filtering.frames import Key, frame_path, list_frames, load_frame, sequences
from coopmap.filtering.motion import estimate_motion, gt_motion
from coopmap.filtering.scoring import SCORE_NAMES, cloud_scores
from coopmap.metrics import aggregate

COLUMNS = [*KEY_COLUMNS, *(f"{n}_{w}" for n in SCORE_NAMES for w in ("before", "after")), "n_history", "status"]


@dataclass
class SingleFrame:
    """A frame after the single-frame filters (1-5): what it contributes as history to the next frames."""

    points: np.ndarray  # (N, 3) float64, its own ego LiDAR frame
    conf: np.ndarray  # (N,) float64 (per-voxel mean confidence after voxel downsampling)
    protected: np.ndarray  # (N,) bool, inside the frame's boxes + margin (exempt from filters 5 and 6)
    counts: dict[str, int] = field(default_factory=dict)  # points left after each filter


@dataclass
class HistoryFrame:
    """A previous frame's cloud (its own ego LiDAR frame) and T_cur_from_hist (4, 4) into the current frame."""

    points: np.ndarray
    T_cur_from_hist: np.ndarray


def single_frame_filter(arrays: dict[str, np.ndarray], cfg: FilterConfig) -> SingleFrame:
    """Filters 1-5 on a saved frame's ``pred_points`` / ``pred_conf`` (each skipped when switched off); the points
    inside the frame's boxes (``cfg.keep_boxes``, + ``cfg.box_margin``) survive filter 5."""
    p = np.asarray(arrays["pred_points"], dtype=np.float64).reshape(-1, 3)
    c = np.asarray(arrays["pred_conf"], dtype=np.float64).reshape(-1)
    counts = {"input": len(p)}

    def apply(name: str, keep: np.ndarray) -> None:
        nonlocal p, c
        p, c = p[keep], c[keep]
        counts[name] = len(p)

    if cfg.range_crop:
        apply("range", F.range_crop(p, cfg.x_range, cfg.y_range, cfg.z_range))
    if cfg.z_min is not None or cfg.z_max is not None:
        apply("height", F.height_band(p, arrays["T_ego_from_egolidar"], cfg.z_min, cfg.z_max))
    if cfg.conf_percentile > 0:
        apply("conf", F.confidence_percentile(c, cfg.conf_percentile))
    if cfg.voxel > 0:
        g = F.voxel_groups(p, cfg.voxel)
        p, c = g.mean(p), g.mean(c)
        counts["voxel"] = len(p)
    boxes = frame_boxes(arrays, cfg.keep_boxes)
    protected = F.in_boxes(p, boxes[0], boxes[1], cfg.box_margin)
    if cfg.sor_k > 0:
        keep = F.statistical_outlier_removal(p, cfg.sor_k, cfg.sor_std) | protected
        apply("sor", keep)
        protected = protected[keep]
    return SingleFrame(p, c, protected, counts)


def frame_boxes(arrays: dict[str, np.ndarray], source: str) -> tuple[np.ndarray, np.ndarray]:
    """The boxes of the box rule: gt (``boxes_*``), pred (``pred_boxes_*`` when the npz has them,
    else none) or none. Returns (K, 4, 4) T_egolidar_from_box and (K, 3) half extents."""
    prefix = {"gt": "boxes", "pred": "pred_boxes"}.get(source)
    if prefix is None or f"{prefix}_pose" not in arrays or f"{prefix}_half_extent" not in arrays:
        return np.zeros((0, 4, 4)), np.zeros((0, 3))
    return arrays[f"{prefix}_pose"], arrays[f"{prefix}_half_extent"]


def apply_support(single: SingleFrame, history, cfg: FilterConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Filter 6: the keep mask of ``single.points`` given the history frames (``single.protected`` points, inside
    the current boxes, are kept whatever their support: the box rule).

    The required support is min(min_support, 1 + len(history)): a frame with fewer previous frames than needed
    (the start of a sequence, gaps) is judged on the frames it has, and one with none is not filtered.
    """
    history = list(history)[-cfg.frames:] if cfg.frames > 0 else []
    need = min(cfg.min_support, 1 + len(history))
    info: dict[str, Any] = {"n_history": len(history), "min_support_used": need, "n_kept_by_boxes": 0}
    if need <= 1:
        return np.ones(len(single.points), dtype=bool), info
    others = [F.apply_transform(h.T_cur_from_hist, h.points) for h in history]
    supported = 1 + F.support_counts(single.points, others, cfg.support_cell) >= need
    info["n_kept_by_boxes"] = int(np.count_nonzero(single.protected & ~supported))
    return supported | single.protected, info


def filter_frame(frame_arrays: dict[str, np.ndarray], history, cfg: FilterConfig | None = None):
    """Filter one frame.

    Args:
        frame_arrays: a saved frame's arrays (keys of :data:`coopmap.filtering.frames.REQUIRED`);
        history: the previous frames as :class:`HistoryFrame` (oldest first; the last ``cfg.frames`` are used),
            whose clouds are used as given (``run_filter`` passes their single-frame-filtered clouds);
        cfg: :class:`FilterConfig` (defaults when None).
    Returns:
        kept points (N, 3) float64, ego LiDAR frame (RH), and info: ``conf`` (N,) of the kept points, ``counts``
        (points left after each filter, ``support`` last), ``n_history``, ``min_support_used``,
        ``n_kept_by_boxes`` (points only the box rule kept) and ``single`` (the :class:`SingleFrame`).
    """
    cfg = (FilterConfig() if cfg is None else cfg).check()
    missing = [k for k in ("pred_points", "pred_conf", "T_ego_from_egolidar") if k not in frame_arrays]
    if missing:
        raise KeyError(f"frame_arrays has no {', '.join(missing)} (the keys of a saved eval frame: "
                       "coopmap.filtering.frames.REQUIRED)")
    single = single_frame_filter(frame_arrays, cfg)
    keep, info = apply_support(single, history, cfg)
    counts = {**single.counts, "support": int(keep.sum())}
    return single.points[keep], {**info, "conf": single.conf[keep], "counts": counts, "single": single}


class _Sequence:
    """One (mode, scenario, ego) sequence being filtered: the single-frame results and ICP links of its frames."""

    def __init__(self, keys: list[Key], cfg: FilterConfig):
        self.keys, self.cfg = keys, cfg
        self.ts = [int(k[1]) for k in keys]
        self.single: dict[int, SingleFrame] = {}
        self.pose: dict[int, np.ndarray] = {}  # GT T_world_from_egolidar
        self.link: dict[int, tuple[int, np.ndarray | None]] = {}  # i -> (previous available j, T_i_from_j)

    def needed(self, done: set) -> list[int]:
        """Frames to load: the undone ones and every frame within the history window before one."""
        out: set[int] = set()
        for i, k in enumerate(self.keys):
            if k not in done:
                out.add(i)
                if self.cfg.frames > 0:
                    out |= {j for j in range(i) if self.ts[i] - self.ts[j] <= self.cfg.history_window}
        return sorted(out)

    def add(self, i: int, single: SingleFrame, T_world: np.ndarray) -> None:
        """Record frame i as available; with pose=pred, estimate its motion from the previous available frame."""
        prev = [j for j in self.single if j < i]
        if self.cfg.pose == "pred" and self.cfg.frames > 0 and prev:
            j = max(prev)
            if self.ts[i] - self.ts[j] <= self.cfg.history_window:
                r = estimate_motion(self.single[j].points, single.points, self.cfg.icp_voxel,
                                    tuple(self.cfg.icp_max_corr), self.cfg.icp_iters)
                self.link[i] = (j, r.T_dst_from_src if r.ok else None)
        self.single[i], self.pose[i] = single, T_world
        for j in [j for j in self.single if self.ts[i] - self.ts[j] > self.cfg.history_window]:
            del self.single[j], self.pose[j]

    def history(self, i: int) -> list[HistoryFrame]:
        """The last K available frames before i within the window, oldest first, mapped by GT or ICP motion."""
        cand = sorted(j for j in self.single if j < i and self.ts[i] - self.ts[j] <= self.cfg.history_window)
        cand = cand[-self.cfg.frames:] if self.cfg.frames > 0 else []
        out: list[HistoryFrame] = []
        T, at = np.eye(4), i
        for j in reversed(cand):
            if self.cfg.pose == "gt":
                T = gt_motion(self.pose[i], self.pose[j])
            else:  # chain the ICP links back from i to j; a failed link ends the history
                while at != j:
                    prev, T_step = self.link.get(at, (None, None))
                    if T_step is None:
                        return out[::-1]
                    T, at = T @ T_step, prev
            out.append(HistoryFrame(self.single[j].points, T))
        return out[::-1]


def _frame_row(arrays, single: SingleFrame, history, cfg: FilterConfig, stem: Path) -> dict[str, Any]:
    keep, info = apply_support(single, history, cfg)
    pts, conf = single.points[keep], single.conf[keep]
    transforms = {k: arrays[k] for k in ("T_ego_from_egolidar", "T_world_from_egolidar")}
    export_cloud(stem, pts, conf, cfg.formats, cfg.frame, cfg.intensity, **transforms)
    args = (arrays["gt_points"], arrays["boxes_pose"], arrays["boxes_half_extent"], arrays["T_ego_from_egolidar"],
            cfg.metrics)
    before, after = cloud_scores(arrays["pred_points"], *args), cloud_scores(pts, *args)
    row: dict[str, Any] = {f"{n}_before": before[n] for n in SCORE_NAMES}
    row.update({f"{n}_after": after[n] for n in SCORE_NAMES})
    return {**row, "n_history": info["n_history"], "status": "ok"}


def _filter_sequence(seq: _Sequence, pred_dir: Path, out_dir: Path, eval_status: dict, csv: AppendCsv,
                     done: set, tick) -> None:
    for i in seq.needed(done):
        key = seq.keys[i]
        todo = key not in done
        base = dict(zip(KEY_COLUMNS, key))
        try:
            arrays = load_frame(frame_path(pred_dir, key))
            single = single_frame_filter(arrays, seq.cfg)
        except (CoopmapError, ValueError) as err:  # DataError names the file; others get it prefixed
            if todo:
                status = eval_status.get(key, "ok")
                reason = f"eval {status}" if status != "ok" else (
                    str(err) if isinstance(err, DataError) else f"{frame_path(pred_dir, key)}: {err}")
                csv.append({**base, "status": f"skipped: {reason}"})
                tick()
            continue
        seq.add(i, single, np.asarray(arrays["T_world_from_egolidar"], dtype=np.float64))
        if todo:
            stem = out_dir / key[3] / key[0] / key[2] / key[1]
            try:
                row = _frame_row(arrays, single, seq.history(i), seq.cfg, stem)
            except (CoopmapError, ValueError) as err:  # a malformed frame never stops the run
                row = {"status": f"skipped: {frame_path(pred_dir, key)}: {err}"}
            csv.append({**base, **row})
            tick()


def _numeric(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        conv: dict[str, Any] = {}
        for k, v in r.items():
            if k in KEY_COLUMNS or k == "status":
                conv[k] = v
            else:
                try:
                    conv[k] = float(v)
                except (TypeError, ValueError):
                    conv[k] = math.nan
        out.append(conv)
    return out


def run_filter(pred_dir, out_dir, cfg: FilterConfig | None = None) -> dict[str, Any]:
    """Filter every frame of a ``coopmap eval`` output (``eval.save_points=true``) into ``out_dir``.

    Writes ``<out_dir>/<mode>/<scenario>/<ego_id>/<timestamp>.<ext>`` per frame and format, ``filter_metrics.csv``
    (one row per frame: before / after scores, status) and ``filter_summary.json`` (per mode mean / median /
    p90). Resumable: frames already in filter_metrics.csv are skipped; rows are appended whole and the file is
    rewritten sorted at the end, so an interrupted-and-resumed run ends with the same CSV as an uninterrupted one.

    Returns:
        {"out_dir", "rows", "ok", "skipped", "summary"}.
    """
    cfg = (FilterConfig() if cfg is None else cfg).check()
    pred_dir, out_dir = Path(pred_dir), Path(out_dir)
    frames = list_frames(pred_dir)
    found = {k[3] for k in frames}
    modes = list(cfg.modes) or [m for m in ("single", "coop") if m in found] + sorted(found - {"single", "coop"})
    keys = [k for k in frames if k[3] in modes]
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)  # of writes a kill interrupted
    csv = AppendCsv(out_dir / "filter_metrics.csv", COLUMNS)  # (its next append drops a torn last line)
    done = {row_key(r) for r in csv.rows()}
    todo = sum(k not in done for k in keys)
    bar = None
    if cfg.progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=todo, desc="filter", unit="frame", dynamic_ncols=True)
    try:
        for seq_keys in sequences(keys).values():
            _filter_sequence(_Sequence(seq_keys, cfg), pred_dir, out_dir, frames, csv, done,
                             bar.update if bar is not None else (lambda n=1: None))
    finally:
        if bar is not None:
            bar.close()
    rows = sort_rows(list({row_key(r): r for r in csv.rows()}.values()), modes)
    csv.rewrite(rows)
    summary = aggregate(_numeric(rows), group_key="mode", status_key="status")
    atomic_write_text(out_dir / "filter_summary.json", json.dumps(summary, indent=1, sort_keys=True))
    ok = sum(r["status"] == "ok" for r in rows)
    return {"out_dir": str(out_dir), "rows": len(rows), "ok": ok, "skipped": len(rows) - ok, "summary": summary}
