"""The frames of a ``coopmap eval`` output: listing, grouping into sequences, loading one saved npz.

A frame is keyed like the eval rows: (scenario, timestamp, ego_id, mode). Its clouds are in
``EVAL_OUT/points/<mode>/<scenario>_<timestamp>_<ego_id>.npz`` (``coopmap.evaluation.outputs.points_path``).
"""

from __future__ import annotations

import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from coopmap.csvio import AppendCsv
from coopmap.errors import DataError
from coopmap.evaluation.outputs import KEY_COLUMNS, points_path, row_key

Key = tuple[str, str, str, str]  # scenario, timestamp, ego_id, mode

#: arrays filter needs in a saved frame, with their trailing shapes (None: any length).
REQUIRED: dict[str, tuple[int | None, ...]] = {
    "pred_points": (None, 3), "pred_conf": (None,), "gt_points": (None, 3), "boxes_pose": (None, 4, 4),
    "boxes_half_extent": (None, 3), "T_ego_from_egolidar": (4, 4), "T_world_from_egolidar": (4, 4),
}
#: optional predicted boxes (a detector's output added to the npz) for ``keep_boxes="pred"``.
OPTIONAL: dict[str, tuple[int | None, ...]] = {"pred_boxes_pose": (None, 4, 4), "pred_boxes_half_extent": (None, 3)}


def _parse_name(path: Path, mode: str) -> Key | None:
    """``<scenario>_<timestamp>_<ego_id>.npz`` -> key (the scenario holds underscores; ego ids may be negative)."""
    parts = path.stem.rsplit("_", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].lstrip("-").isdigit():
        return None
    return parts[0], parts[1], parts[2], mode


def list_frames(pred_dir: str | Path) -> dict[Key, str]:
    """Every frame of an eval output -> its eval status ('ok' or 'skipped: ...').

    Frames are the rows of ``coop_metrics.csv`` (when present) plus any saved npz not listed there.
    Raises DataError when the folder holds neither.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(pred_dir, "not a folder (expected the out_dir of `coopmap eval ... eval.save_points=true`)")
    frames: dict[Key, str] = {}
    csv_path = pred_dir / "coop_metrics.csv"
    if csv_path.exists():
        table = AppendCsv(csv_path)
        missing = [c for c in KEY_COLUMNS if c not in (table.columns or KEY_COLUMNS)]
        if missing:
            raise DataError(csv_path, f"no column(s) {', '.join(missing)}: not a coop_metrics.csv of coopmap eval")
        for r in table.rows():
            frames[row_key(r)] = r.get("status", "ok")
    for mode_dir in sorted(p for p in (pred_dir / "points").glob("*") if p.is_dir()):
        for f in sorted(mode_dir.glob("*.npz")):
            key = _parse_name(f, mode_dir.name)
            if key is not None:
                frames.setdefault(key, "ok")
    if not frames:
        raise DataError(pred_dir, "no coop_metrics.csv and no points/<mode>/*.npz: run `coopmap eval` with "
                                  "eval.save_points=true into this folder first")
    return frames


def sequences(keys) -> dict[tuple[str, str, str], list[Key]]:
    """Frames grouped by (mode, scenario, ego_id), each group in increasing integer timestamp."""
    groups: dict[tuple[str, str, str], list[Key]] = defaultdict(list)
    for k in keys:
        groups[(k[3], k[0], k[2])].append(k)
    return {g: sorted(v, key=lambda k: int(k[1])) for g, v in sorted(groups.items())}


def frame_path(pred_dir: str | Path, key: Key) -> Path:
    return points_path(Path(pred_dir), key)


def load_frame(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of one saved frame (REQUIRED keys, plus OPTIONAL ones when present), checked.

    Non-finite predicted points are dropped (with their confidences). Raises DataError naming the file and
    the key when the file is missing, unreadable or malformed.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "missing (run `coopmap eval` with eval.save_points=true)")
    if not zipfile.is_zipfile(path):
        raise DataError(path, "not an npz (zip) archive: corrupt or truncated")
    try:
        with np.load(path, allow_pickle=False) as d:
            present = set(d.files)
            arrays = {k: np.asarray(d[k]) for k in [*REQUIRED, *OPTIONAL] if k in present}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise DataError(path, f"unreadable npz ({type(err).__name__}: {err})") from None
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise DataError(path, f"missing array(s) {', '.join(missing)}")
    for k, shape in {**REQUIRED, **OPTIONAL}.items():
        if k in arrays and (arrays[k].ndim != len(shape) or
                            any(s is not None and s != a for s, a in zip(shape, arrays[k].shape))):
            want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
            raise DataError(path, f"array {k!r} has shape {arrays[k].shape}, expected {want}")
    if len(arrays["pred_conf"]) != len(arrays["pred_points"]):
        raise DataError(path, f"pred_conf has {len(arrays['pred_conf'])} values for "
                              f"{len(arrays['pred_points'])} points")
    for k in ("boxes_pose", "T_ego_from_egolidar", "T_world_from_egolidar"):
        if not np.isfinite(arrays[k]).all():
            raise DataError(path, f"array {k!r} is not finite")
    finite = np.isfinite(arrays["pred_points"]).all(1) & np.isfinite(arrays["pred_conf"])
    if not finite.all():
        arrays["pred_points"], arrays["pred_conf"] = arrays["pred_points"][finite], arrays["pred_conf"][finite]
    return arrays
