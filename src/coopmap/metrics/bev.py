"""Bird's-eye-view occupancy of objects: grids of cells holding points in a height band above the ground."""

from __future__ import annotations

import math

import numpy as np

from coopmap.metrics._arrays import as_points


def _cells(lo: float, hi: float, cell: float) -> int:
    if not (hi > lo and cell > 0):
        raise ValueError(f"need high > low and cell > 0, got range ({lo}, {hi}) and cell {cell}")
    return int(math.ceil((hi - lo) / cell - 1e-9))


def bev_occupancy(
    pts,
    cell: float = 0.4,
    z_band: tuple[float, float] = (0.3, 3.0),
    ground_z: float = 0.0,
    x_range: tuple[float, float] = (-50.0, 50.0),
    y_range: tuple[float, float] = (-50.0, 50.0),
) -> np.ndarray:
    """Boolean BEV grid: a cell is occupied iff it holds a point whose height above the ground is in ``z_band``.

    Cell (i, j) covers x in [x0 + i cell, x0 + (i+1) cell), y likewise; points outside the grid are ignored.
    The height of a point is ``z - ground_z`` with ``z_band`` = [low, high) (default 0.3-3.0 m: objects, not road).

    Args:
        pts: (N, 3) metres in a frame whose z axis is up (the ego vehicle frame in evaluation, ground at z = 0).
        cell: cell side, metres; x_range, y_range: (low, high) metres of the grid.
    Returns:
        (nx, ny) bool, nx = ceil((x_high - x_low) / cell).
    """
    p = as_points("pts", pts, finite=False)
    nx, ny = _cells(*x_range, cell), _cells(*y_range, cell)
    h = p[:, 2] - ground_z
    ix = np.floor((p[:, 0] - x_range[0]) / cell)
    iy = np.floor((p[:, 1] - y_range[0]) / cell)
    keep = (h >= z_band[0]) & (h < z_band[1]) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    grid = np.zeros((nx, ny), dtype=bool)
    grid[ix[keep].astype(np.int64), iy[keep].astype(np.int64)] = True
    return grid


def bev_scores(pred_grid: np.ndarray, gt_grid: np.ndarray) -> dict[str, float]:
    """IoU, precision and recall of the occupied cells of two grids of the same shape (NaN when undefined)."""
    if pred_grid.shape != gt_grid.shape:
        raise ValueError(f"BEV grids differ in shape: pred {pred_grid.shape}, gt {gt_grid.shape}")
    inter = int(np.count_nonzero(pred_grid & gt_grid))
    n_pred, n_gt = int(np.count_nonzero(pred_grid)), int(np.count_nonzero(gt_grid))
    union = n_pred + n_gt - inter
    return {
        "iou": inter / union if union else math.nan,
        "precision": inter / n_pred if n_pred else math.nan,
        "recall": inter / n_gt if n_gt else math.nan,
    }


def bev_metrics(
    pred,
    gt,
    cell: float = 0.4,
    z_band: tuple[float, float] = (0.3, 3.0),
    ground_z: float = 0.0,
    x_range: tuple[float, float] = (-50.0, 50.0),
    y_range: tuple[float, float] = (-50.0, 50.0),
) -> dict[str, float]:
    """BEV occupancy IoU / precision / recall of a predicted cloud against a GT cloud (same frame, z up).

    Args:
        pred: (N, 3), gt: (M, 3) metres; the other arguments as in :func:`bev_occupancy`.
    Returns:
        dict with keys iou, precision, recall (floats; NaN where the denominator is empty).
    """
    kw = dict(cell=cell, z_band=z_band, ground_z=ground_z, x_range=x_range, y_range=y_range)
    return bev_scores(bev_occupancy(pred, **kw), bev_occupancy(gt, **kw))
