"""The worst frames of an eval output and what the report draws for each: saved clouds (before and after
filtering) and the frame's camera images with their sparse LiDAR depth, re-loaded through the dataset.

Every cloud is in the ego LiDAR frame, right-handed (x forward, y left, z up), as ``coopmap eval`` saves it.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from coopmap.errors import CoopmapError, DataError
from coopmap.report.collect import KEY_COLUMNS, EvalOut, FilterOut, Key, points_file, row_key
from coopmap.report.columns import direction, to_float

#: arrays of a saved eval frame the BEV picture needs.
CLOUD_KEYS = ("pred_points", "gt_points", "boxes_pose", "boxes_half_extent", "T_ego_from_egolidar")


@dataclass
class WorstFrame:
    """One of the K worst frames of an eval folder by ``metric`` (rank 1 = worst)."""

    eval_name: str
    key: Key  # scenario, timestamp, ego_id, mode
    metric: str
    value: float
    rank: int
    row: dict[str, str]


@dataclass
class CameraView:
    """One camera image at the eval's resolution and its sparse LiDAR z-depth (0 = no return)."""

    agent_id: int
    camera: int
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres


def worst_frames(ev: EvalOut, k: int, metric: str = "chamfer", mode: str = "coop") -> list[WorstFrame]:
    """The k ok frames of ``mode`` (the eval's first mode if it has no such rows) with the worst finite ``metric``
    (largest for errors, smallest for scores such as fscore); ties keep the CSV order."""
    modes = list(dict.fromkeys(r.get("mode", "") for r in ev.rows))
    if mode not in modes:
        mode = modes[0] if modes else mode
    sign = -1.0 if direction(metric) < 0 else 1.0
    ok = [(to_float(r.get(metric)), i, r) for i, r in enumerate(ev.rows)
          if r.get("mode") == mode and r.get("status", "ok") == "ok"]
    ranked = sorted(((v, i, r) for v, i, r in ok if math.isfinite(v)), key=lambda t: (sign * t[0], t[1]))
    return [WorstFrame(ev.name, row_key(r), metric, v, n, r) for n, (v, _, r) in enumerate(ranked[:k], 1)]


def load_clouds(eval_dir: Path, key: Key) -> dict[str, np.ndarray]:
    """The frame's saved arrays (``CLOUD_KEYS``); DataError when the npz is missing or lacks one."""
    path = points_file(eval_dir, key)
    if not path.is_file():
        raise DataError(path, "no saved clouds for this frame (run coopmap eval with eval.save_points=true)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in CLOUD_KEYS if k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(path, f"unreadable npz ({err})") from None
    missing = [k for k in CLOUD_KEYS if k not in arrays]
    if missing:
        raise DataError(path, f"missing arrays {', '.join(missing)}")
    return arrays


def _flip_y(pts: np.ndarray) -> np.ndarray:
    return pts * np.array([1.0, -1.0, 1.0], dtype=pts.dtype)


def right_handed(points: np.ndarray, reference: np.ndarray, sample: int = 2000) -> np.ndarray:
    """``points`` as given or with y flipped (OPV2V's native left-handed LiDAR frame), whichever lies closer to
    ``reference`` (the unfiltered cloud in our right-handed frame): a filtered cloud is a subset (or voxel means)
    of it, so the right frame puts every point on it. (N, 3) -> (N, 3)."""
    from coopmap.metrics import nn_distances

    if len(points) == 0 or len(reference) == 0:
        return points
    rng = np.random.default_rng(0)
    probe = points[rng.choice(len(points), min(sample, len(points)), replace=False)].astype(np.float64)
    ref = reference.astype(np.float64)
    as_is = np.median(nn_distances(probe, ref))
    flipped = np.median(nn_distances(_flip_y(probe), ref))
    return points if as_is <= flipped else _flip_y(points)


def load_filtered(filter_out: FilterOut, key: Key, reference: np.ndarray) -> np.ndarray:
    """The filtered cloud of a frame in the ego LiDAR frame (RH), (N, 3) float32.

    Reads ``<mode>/<scenario>/<ego_id>/<timestamp>.npz`` (``points_rh``), else the ``.pcd`` / ``.bin`` / ``.ply``
    written by ``coopmap filter`` (their frame, native or rh, is recognised against ``reference``).
    """
    scenario, timestamp, ego_id, mode = key
    stem = filter_out.path / mode / scenario / ego_id / timestamp
    if stem.with_suffix(".npz").is_file():
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as z:
            if "points_rh" in z.files:
                return np.asarray(z["points_rh"], dtype=np.float32).reshape(-1, 3)
    readers = {".pcd": _read_pcd, ".bin": _read_bin, ".ply": _read_ply}
    for suffix, reader in readers.items():
        if stem.with_suffix(suffix).is_file():
            return right_handed(reader(stem.with_suffix(suffix)), reference).astype(np.float32)
    raise DataError(stem.with_suffix(".*"), "no filtered cloud for this frame (npz, pcd, bin or ply)")


def _read_pcd(path: Path) -> np.ndarray:
    from coopmap.data.pcd_io import read_pcd

    return read_pcd(path, with_intensity=False).points


def _read_bin(path: Path) -> np.ndarray:
    from coopmap.filtering.export import read_kitti_bin

    return read_kitti_bin(path)[0]


def _read_ply(path: Path) -> np.ndarray:
    from coopmap.filtering.export import read_ply

    return read_ply(path)[0]


class FrameLoader:
    """Re-loads frames of eval folders through :class:`~coopmap.data.dataset.ViewsDataset` with each eval's
    ``config.yaml`` (data.root, split, resolution, ...); datasets are built once per (config, mode)."""

    def __init__(self) -> None:
        self._datasets: dict[str, object] = {}

    def _dataset(self, ev: EvalOut, mode: str):
        data = (ev.config or {}).get("data")
        if not isinstance(data, dict):
            raise DataError(ev.path / "config.yaml", "missing or without a 'data' section: cannot re-load frames")
        cache_key = repr((sorted(data.items()), mode))
        if cache_key not in self._datasets:
            self._datasets[cache_key] = _open_dataset(data, mode, ev.path / "config.yaml")
        ds = self._datasets[cache_key]
        if isinstance(ds, Exception):
            raise ds
        return ds

    def cameras(self, ev: EvalOut, key: Key) -> list[CameraView]:
        """The frame's camera views (ego first, camera0..3 per agent); CoopmapError/OSError when it cannot be
        re-loaded (data root gone, frame not in the split, unreadable files)."""
        from coopmap.data.images import NORM_STATS

        scenario, timestamp, ego_id, mode = key
        ds = self._dataset(ev, mode)
        match = [i for i, k in enumerate(ds.keys) if (k.scenario, k.timestamp, k.ego_id) == (scenario, timestamp,
                                                                                              ego_id)]
        if not match:
            raise DataError(f"{ds.index.root}/{ds.split}/{scenario}",
                            f"frame {timestamp} of ego {ego_id} ({mode}) is not in this split any more")
        views = ds[match[0]]
        out = []
        for v in views:
            norm = v.get("data_norm_type", "identity")
            mean, std = NORM_STATS[norm if isinstance(norm, str) else norm[0]]
            out.append(CameraView(int(v["agent_id"]), int(v["camera_index"]),
                                  denormalize(v["img"].numpy(), mean, std),
                                  v["depthmap"][..., 0].numpy().astype(np.float32)))
        return out


def _open_dataset(data: dict, mode: str, config_path: Path):
    """The ViewsDataset of an eval's data config in ``mode``, or the DataError saying why it cannot be opened."""
    from coopmap.data.dataset import ViewsDataset

    root = Path(str(data.get("root")))
    if not root.is_dir():
        return DataError(root, f"data root not found (moved or deleted?; from {config_path})")
    try:
        data_cfg = OmegaConf.merge(OmegaConf.create(data), {"mode": mode})
        return ViewsDataset(data_cfg, split=data_cfg.split)
    except CoopmapError as err:
        return err
    except (OSError, ValueError, KeyError, AttributeError, OmegaConfBaseException) as err:
        # e.g. a config.yaml from another coopmap version: no pictures, but the page is still written
        return DataError(config_path, f"cannot re-load frames ({err})")


def denormalize(img: np.ndarray, mean, std) -> np.ndarray:
    """(3, H, W) normalised float image -> (H, W, 3) uint8 RGB (inverse of ``data.images.normalize_image``)."""
    chw = img.astype(np.float64) * np.asarray(std)[:, None, None] + np.asarray(mean)[:, None, None]
    return np.clip(np.rint(np.moveaxis(chw, 0, -1) * 255.0), 0, 255).astype(np.uint8)


def frame_title(key: Key) -> str:
    return ", ".join(f"{k} {v}" for k, v in zip(KEY_COLUMNS, key))
