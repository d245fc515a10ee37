"""What ``coopmap eval`` writes: the per-frame CSV columns, summary.json, worst_frames.csv and saved clouds."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coopmap.csvio import AppendCsv
from coopmap.errors import DataError
from coopmap.metrics import aggregate

KEY_COLUMNS = ["scenario", "timestamp", "ego_id", "mode"]
METRIC_COLUMNS = [
    "n_agents", "n_views", "depth_rmse", "depth_mae", "depth_abs_rel", "depth_delta1", "pose_abs_t", "pose_abs_r",
    "agent_pose_abs_t", "agent_pose_abs_r", "input_agent_pose_abs_t", "input_agent_pose_abs_r", "agent_refine_t",
    "agent_refine_r", "scale_err", "metric_scale_abs_rel", "chamfer", "chamfer_pred_to_gt",
    "chamfer_gt_to_pred", "fscore", "precision", "recall", "bev_iou", "bev_precision", "bev_recall",
    "floating_ratio", "sky_below_ratio", "sky_float_ratio", "lidar_float_ratio", "unlabelled_depth_abs_rel",
    "unlabelled_depth_mae", "vehicle_recall", "n_pred_points", "n_gt_points", "n_vehicles",
]
COLUMNS = KEY_COLUMNS + METRIC_COLUMNS + ["status"]
#: metrics whose largest values are listed in worst_frames.csv
WORST_BY = ["pose_abs_t", "scale_err", "chamfer"]
#: temp files of atomic writes are ``.<name>.<random>.tmp`` beside their target (a SIGKILL can leave one).
TMP_SUFFIX = ".tmp"


def row_key(row: dict) -> tuple[str, str, str, str]:
    return tuple(str(row[k]) for k in KEY_COLUMNS)  # type: ignore[return-value]


def sort_rows(rows: Sequence[dict], modes: Sequence[str]) -> list[dict]:
    """Deterministic order: by mode (in the order evaluated), scenario, timestamp, ego id."""
    order = {m: i for i, m in enumerate(modes)}
    return sorted(rows, key=lambda r: (order.get(r["mode"], len(order)), r["scenario"], r["timestamp"], r["ego_id"]))


def _numeric_rows(rows: Sequence[dict]) -> list[dict]:
    out = []
    for r in rows:
        conv: dict = {}
        for k, v in r.items():
            try:
                conv[k] = float(v) if k in METRIC_COLUMNS else v
            except (TypeError, ValueError):
                conv[k] = math.nan
        out.append(conv)
    return out


def write_summary(out_dir: Path, rows: Sequence[dict]) -> dict:
    """summary.json: per mode mean / median / p90 of every metric over ok frames, and counts of ok / skipped."""
    summary = aggregate(_numeric_rows(rows), group_key="mode", status_key="status")
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1, sort_keys=True, allow_nan=True))
    return summary


def write_worst(out_dir: Path, rows: Sequence[dict], k: int) -> None:
    """worst_frames.csv: for each metric of WORST_BY, the k ok frames with the largest value (per mode)."""
    numeric = [r for r in _numeric_rows(rows) if r.get("status") == "ok"]
    out = []
    for metric in WORST_BY:
        for mode in sorted({r["mode"] for r in numeric}):
            ranked = sorted((r for r in numeric if r["mode"] == mode and math.isfinite(r[metric])),
                            key=lambda r: -r[metric])
            for rank, r in enumerate(ranked[:k], 1):
                out.append({"metric": metric, "rank": rank, **{c: r[c] for c in KEY_COLUMNS}, "value": r[metric]})
    path = out_dir / "worst_frames.csv"
    csv = AppendCsv(path, ["metric", "rank", *KEY_COLUMNS, "value"])
    csv.rewrite(out)


def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def remove_stale_temporaries(out_dir: Path) -> int:
    """Delete the temp files of interrupted atomic writes under ``out_dir`` (never read); returns how many."""
    stale = [p for p in out_dir.rglob(f".*{TMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def points_path(out_dir: Path, key: tuple[str, str, str, str]) -> Path:
    """``out_dir/points/<mode>/<scenario>_<timestamp>_<ego_id>.npz``; refuses key parts that could leave
    ``out_dir`` (path separators, ``..``), e.g. from a hand-edited CSV."""
    for part in key:
        if not part or "/" in part or "\\" in part or part in (".", "..") or "\0" in part:
            raise DataError(out_dir, f"refusing a frame key part {part!r} (path separator, '..' or empty)")
    scenario, timestamp, ego_id, mode = key
    return out_dir / "points" / mode / f"{scenario}_{timestamp}_{ego_id}.npz"


def save_points(path: Path, **arrays: np.ndarray) -> None:
    """One frame's clouds as an .npz written atomically (no pickled objects: loads with allow_pickle=False)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
