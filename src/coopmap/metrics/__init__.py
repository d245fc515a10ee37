"""Evaluation metrics: one value per sample, aggregation separate (definitions and frames: docs/metrics.md).

- :mod:`~coopmap.metrics.pointcloud`: Chamfer distance, precision / recall / F-score (kd-tree, chunked).
- :mod:`~coopmap.metrics.crop`: range box and camera-frustum cropping.
- :mod:`~coopmap.metrics.depth`: depth errors, ``scale_err``, MapAnything's ``metric_scale_abs_rel``.
- :mod:`~coopmap.metrics.pose`: absolute camera and agent pose errors (m, deg).
- :mod:`~coopmap.metrics.bev`: BEV occupancy IoU / precision / recall.
- :mod:`~coopmap.metrics.floating`: floating points (all, from sky, without LiDAR support), sky
  predicted at a finite distance, depth of unlabelled pixels.
- :mod:`~coopmap.metrics.vehicles`: vehicle recall.
- :mod:`~coopmap.metrics.frame`: every column of one sample (``frame_metrics``).
- :mod:`~coopmap.metrics.summary`: per-mode mean / median / p90.
"""

from coopmap.metrics.bev import bev_metrics, bev_occupancy, bev_scores
from coopmap.metrics.crop import crop_range, frustum_mask, in_any_frustum
from coopmap.metrics.depth import avg_dis, depth_metrics, metric_scale_abs_rel, scale_err
from coopmap.metrics.floating import (
    floating_ratio,
    lidar_float_ratio,
    sky_below_ratio,
    sky_float_ratio,
    unlabelled_depth_errors,
)
from coopmap.metrics.frame import MetricsConfig, frame_clouds, frame_metrics
from coopmap.metrics.pointcloud import DEFAULT_CHUNK, chamfer_fscore, nn_distances
from coopmap.metrics.pose import agent_pose_abs, agent_poses, pose_abs, pose_errors
from coopmap.metrics.summary import aggregate, summarize
from coopmap.metrics.vehicles import points_in_boxes, vehicle_recall

__all__ = [
    "DEFAULT_CHUNK",
    "MetricsConfig",
    "agent_pose_abs",
    "agent_poses",
    "aggregate",
    "avg_dis",
    "bev_metrics",
    "bev_occupancy",
    "bev_scores",
    "chamfer_fscore",
    "crop_range",
    "depth_metrics",
    "floating_ratio",
    "frame_clouds",
    "frame_metrics",
    "frustum_mask",
    "in_any_frustum",
    "lidar_float_ratio",
    "metric_scale_abs_rel",
    "nn_distances",
    "points_in_boxes",
    "pose_abs",
    "pose_errors",
    "scale_err",
    "sky_below_ratio",
    "sky_float_ratio",
    "summarize",
    "unlabelled_depth_errors",
    "vehicle_recall",
]
