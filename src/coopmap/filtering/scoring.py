"""The point-cloud metrics of ``coopmap eval`` on a saved frame, for the before / after columns of filter_metrics.csv.

Same definitions, frames and settings as :func:`coopmap.metrics.frame_metrics` (docs/metrics.md), with one
difference: the saved npz has no camera frustums, so the GT LiDAR is cropped to the range box only (not to the
union of the views' frustums). "before" scores therefore differ slightly from coop_metrics.csv; before and after
are always comparable with each other.
"""

from __future__ import annotations

import numpy as np

from coopmap.geometry import transform_points
from coopmap.metrics import (
    MetricsConfig,
    bev_metrics,
    chamfer_fscore,
    crop_range,
    floating_ratio,
    vehicle_recall,
)

#: per-frame columns, each written as ``<name>_before`` and ``<name>_after``.
SCORE_NAMES = ("chamfer", "fscore", "bev_iou", "floating_ratio", "vehicle_recall", "n_points")


def cloud_scores(pred_L, gt_L, boxes_pose, boxes_half_extent, T_ego_from_egolidar,
                 cfg: MetricsConfig | None = None) -> dict[str, float]:
    """Chamfer, F-score, BEV IoU, floating ratio, vehicle recall and point count of one predicted cloud.

    Args:
        pred_L: (N, 3) predicted points, ego LiDAR frame (RH); gt_L: (M, 3) GT LiDAR, same frame;
        boxes_pose: (K, 4, 4) T_egolidar_from_box; boxes_half_extent: (K, 3);
        T_ego_from_egolidar: (4, 4) into the ego vehicle frame (z = height above the ground);
        cfg: :class:`MetricsConfig` (ranges, thresholds; defaults when None).
    Returns:
        dict with the keys of :data:`SCORE_NAMES` (floats, NaN where undefined).
    """
    cfg = MetricsConfig() if cfg is None else cfg
    xr, yr, zr = tuple(cfg.x_range), tuple(cfg.y_range), tuple(cfg.z_range)
    pred = np.asarray(pred_L, dtype=np.float64).reshape(-1, 3)
    gt = np.asarray(gt_L, dtype=np.float64).reshape(-1, 3)
    gt = gt[np.isfinite(gt).all(1)]
    T = np.asarray(T_ego_from_egolidar, dtype=np.float64)
    pred_xy = crop_range(pred, xr, yr, None)
    pred_in = pred_xy & (pred[:, 2] >= zr[0]) & (pred[:, 2] <= zr[1])
    gt_in = crop_range(gt, xr, yr, zr)
    pc = chamfer_fscore(pred[pred_in], gt[gt_in], cfg.fscore_threshold, cfg.chunk)
    off = T[:2, 3]  # the BEV grid (ego frame) covers the crop box (LiDAR frame), as in frame_metrics
    bev = bev_metrics(transform_points(T, pred[pred_in]), transform_points(T, gt[gt_in]), cell=cfg.bev_cell,
                      z_band=tuple(cfg.bev_z_band), ground_z=0.0, x_range=(xr[0] + off[0], xr[1] + off[0]),
                      y_range=(yr[0] + off[1], yr[1] + off[1]))
    boxes = np.asarray(boxes_pose, dtype=np.float64).reshape(-1, 4, 4)
    ext = np.asarray(boxes_half_extent, dtype=np.float64).reshape(-1, 3)
    in_range = crop_range(boxes[:, :3, 3], xr, yr, zr)
    return {
        "chamfer": pc["chamfer"],
        "fscore": pc["fscore"],
        "bev_iou": bev["iou"],
        "floating_ratio": floating_ratio(transform_points(T, pred[pred_xy]), cfg.z_max),
        "vehicle_recall": vehicle_recall(pred, boxes[in_range], ext[in_range], cfg.vehicle_margin,
                                         cfg.vehicle_min_points),
        "n_points": float(len(pred)),
    }
