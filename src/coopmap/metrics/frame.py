"""Every metric of one evaluated sample (B = 1) from the batch views, the predictions and the fused GT LiDAR.

Frames (docs/metrics.md):
- predictions are re-expressed relative to the **predicted** view 0 (``inv(T_pred_world_from_cam0) pts3d``) and
  that frame is taken as the GT ego camera0 frame;
- the predicted cloud is every pixel's point that is finite and in front of its camera (``pts3d_cam`` z > 0; a
  masked pixel of MapAnything's ``infer`` or of the oracle has depth 0 and is not a point), optionally only the
  pixels of the model's ``non_ambiguous_mask`` (``MetricsConfig.use_pred_mask``);
- point clouds are compared in the **ego LiDAR frame** (``T_egolidar_from_cam`` of view 0, a GT transform, so pose
  errors show); the range crop is in that frame;
- heights (BEV band, floating points) are z in the **ego vehicle frame** (``T_ego_from_cam`` of view 0), whose
  origin is on the ground: height above the ground = z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from coopmap.errors import ShapeError
from coopmap.geometry import pose_from_quat_trans, transform_points
from coopmap.metrics._arrays import as_points, to_numpy
from coopmap.metrics.bev import bev_metrics
from coopmap.metrics.crop import crop_range, in_any_frustum
from coopmap.metrics.depth import depth_metrics, metric_scale_abs_rel, scale_err
from coopmap.metrics.floating import (
    floating_ratio,
    lidar_float_ratio,
    sky_below_ratio,
    sky_float_ratio,
    unlabelled_depth_errors,
)
from coopmap.metrics.pointcloud import DEFAULT_CHUNK, chamfer_fscore
from coopmap.metrics.pose import SHARED_POSE_COLUMNS, agent_pose_abs, agent_pose_refinement, pose_abs
from coopmap.metrics.vehicles import vehicle_recall


@dataclass
class MetricsConfig:
    """Settings of the per-frame metrics (a structured-config schema: it can become a node of the eval config)."""

    #: evaluated region in the ego LiDAR frame, metres: [low, high] per axis (bounds included).
    x_range: list[float] = field(default_factory=lambda: [-50.0, 50.0])
    y_range: list[float] = field(default_factory=lambda: [-50.0, 50.0])
    z_range: list[float] = field(default_factory=lambda: [-3.0, 4.0])
    #: also crop the GT LiDAR to the union of the views' frustums (the cameras cannot reconstruct the rest).
    crop_gt_to_frustums: bool = True
    #: metres; precision / recall / F-score distance threshold.
    fscore_threshold: float = 0.5
    #: BEV cell side (m) and height band [low, high) above the ground (m): objects, not road.
    bev_cell: float = 0.4
    bev_z_band: list[float] = field(default_factory=lambda: [0.3, 3.0])
    #: metres above the ground beyond which a predicted point is "floating".
    z_max: float = 4.0
    #: metres; a sky pixel predicted as a point closer than this counts in ``sky_below_ratio`` (synthetic scenes).
    sky_max_dist: float = 100.0
    #: ``lidar_float_ratio``: a predicted point above ``z_max`` is supported (not counted) when a GT LiDAR point
    #: higher than ``z_max - lidar_float_margin`` lies within ``lidar_float_radius`` metres horizontally. 2 m, not
    #: 1: an OPV2V-like LiDAR (upper FOV +2 deg at 1.9 m) rarely returns above 3 m within 30 m, so with 1 m the
    #: dense GT's own facades scored 0.24 (docs/metrics.md).
    lidar_float_radius: float = 2.0
    lidar_float_margin: float = 2.0
    #: metres added to every half extent of a GT box, and predicted points a vehicle needs to count as found.
    vehicle_margin: float = 0.2
    vehicle_min_points: int = 10
    #: also drop the pixels the model marks ambiguous (its ``non_ambiguous_mask``) from the predicted cloud;
    #: default False: every pixel with a point in front of its camera counts.
    use_pred_mask: bool = False
    #: kd-tree queries per call (memory bound of the nearest-neighbour search).
    chunk: int = DEFAULT_CHUNK


def _stack(dicts, key: str, where: str) -> np.ndarray:
    """The per-view values of ``key`` stacked on a new first axis, with the batch dim (must be 1) removed."""
    out = []
    for i, d in enumerate(dicts):
        if key not in d:
            raise KeyError(f"{where}[{i}] has no key '{key}' (see docs/views.md)")
        x = to_numpy(d[key])
        if x.ndim == 0 or x.shape[0] != 1:
            raise ShapeError(f"frame_metrics evaluates one sample: {where}[{i}]['{key}'] has shape {x.shape}, "
                             "expected batch size 1")
        out.append(x[0])
    return np.stack(out)


@dataclass
class _Sample:
    """The arrays of one sample that the metrics use, stacked over views (batch dim removed), read once."""

    valid: np.ndarray  # (V, H, W) bool, GT-valid pixels
    gt_z: np.ndarray  # (V, H, W) sparse GT z-depth
    gt_pose: np.ndarray  # (V, 4, 4) T_world_from_cam, GT world = GT view 0
    pred_pose: np.ndarray  # (V, 4, 4) predicted T_world_from_cam (predicted world)
    pred_pts: np.ndarray  # (V, H, W, 3) predicted pts3d (predicted world)
    pred_cam: np.ndarray  # (V, H, W, 3) predicted pts3d_cam
    T_L_from_cam: np.ndarray  # (V, 4, 4) GT T_egolidar_from_cam
    T_E_from_L: np.ndarray  # (4, 4) ego LiDAR into the ego vehicle frame


def _gather(views, preds) -> _Sample:
    q = torch.as_tensor(_stack(preds, "cam_quats", "preds"), dtype=torch.float64)
    t = torch.as_tensor(_stack(preds, "cam_trans", "preds"), dtype=torch.float64)
    T_L_from_cam = _stack(views, "T_egolidar_from_cam", "views").astype(np.float64)
    T_E_from_cam0 = _stack(views[:1], "T_ego_from_cam", "views")[0].astype(np.float64)
    return _Sample(
        valid=_stack(views, "valid_mask", "views").astype(bool),
        gt_z=_stack(views, "depthmap", "views")[..., 0],
        gt_pose=_stack(views, "camera_pose", "views").astype(np.float64),
        pred_pose=pose_from_quat_trans(q, t).numpy(),
        pred_pts=_stack(preds, "pts3d", "preds"),
        pred_cam=_stack(preds, "pts3d_cam", "preds"),
        T_L_from_cam=T_L_from_cam,
        T_E_from_L=T_E_from_cam0 @ np.linalg.inv(T_L_from_cam[0]),
    )


def _image_metrics(views, s: _Sample) -> dict[str, float]:
    """Depth, scale, metric-scale and pose columns (pixel- and camera-level)."""
    pred_z = s.pred_cam[..., 2]
    gt_pts = _stack(views, "pts3d", "views")[s.valid].astype(np.float64)
    gt_v0 = transform_points(np.linalg.inv(s.gt_pose[0]), gt_pts)
    pred_v0 = transform_points(np.linalg.inv(s.pred_pose[0]), s.pred_pts[s.valid].astype(np.float64))
    every = np.ones(len(gt_v0), dtype=bool)
    depth = depth_metrics(pred_z, s.gt_z, s.valid)
    t, r = pose_abs(s.pred_pose, s.gt_pose)
    rig = (_stack(views, "T_agent_from_cam", "views"), _stack(views, "agent_index", "views"),
           _stack(views, "camera_index", "views"))
    at, ar = agent_pose_abs(s.pred_pose, s.gt_pose, *rig)
    # the shared poses (the models' pose inputs) against the GT, and how much of their error the model removes
    shared = (agent_pose_refinement(s.pred_pose, _stack(views, "shared_camera_pose", "views"), s.gt_pose, *rig)
              if "shared_camera_pose" in views[0] else dict.fromkeys(SHARED_POSE_COLUMNS, math.nan))
    return {
        **{f"depth_{k}": v for k, v in depth.items()},
        "scale_err": scale_err(pred_z, s.gt_z, s.valid),
        "metric_scale_abs_rel": metric_scale_abs_rel(pred_v0, gt_v0, every),
        "pose_abs_t": t, "pose_abs_r": r, "agent_pose_abs_t": at, "agent_pose_abs_r": ar, **shared,
    }


def _gt_boxes_ego_lidar(views, T_L_from_gtworld: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sample's real GT boxes as T_egolidar_from_box (K, 4, 4) and half extents (K, 3)."""
    pose = to_numpy(views[0]["boxes_pose"], np.float64)[0]
    ext = to_numpy(views[0]["boxes_half_extent"], np.float64)[0]
    n = int(to_numpy(views[0]["boxes_count"]).reshape(-1)[0])
    ids = to_numpy(views[0]["boxes_id"])[0][:n]
    keep = ids >= 0
    return T_L_from_gtworld @ pose[:n][keep], ext[:n][keep]


def _failure_metrics(views, s: _Sample, keep: np.ndarray, pred_L: np.ndarray, gt_lidar: np.ndarray,
                     cfg) -> dict[str, float]:
    """The floating-layer and unlabelled-depth columns: ``sky_float_ratio``, ``unlabelled_depth_abs_rel``,
    ``unlabelled_depth_mae``, ``sky_below_ratio`` (views with dense GT; NaN without) and ``lidar_float_ratio``.

    ``keep`` (V, H, W) are the pixels that are predicted points, ``pred_L`` their points (ego LiDAR frame, in the
    order of ``keep``); "in range" = inside the x/y range (no z crop, as ``floating_ratio``)."""
    xy = crop_range(pred_L, tuple(cfg.x_range), tuple(cfg.y_range), None)
    pred_E = transform_points(s.T_E_from_L, pred_L[xy])
    lidar_E = transform_points(s.T_E_from_L, gt_lidar[np.isfinite(gt_lidar).all(-1)].astype(np.float64))
    out = {"lidar_float_ratio": lidar_float_ratio(pred_E, lidar_E, cfg.z_max, cfg.lidar_float_radius,
                                                  cfg.lidar_float_margin)}
    has_dense = _stack(views, "has_dense_depth", "views").astype(bool).reshape(-1)
    if not has_dense.any():
        nan = math.nan
        return {**out, "sky_float_ratio": nan, "unlabelled_depth_abs_rel": nan, "unlabelled_depth_mae": nan,
                "sky_below_ratio": nan}
    dense = _stack(views, "dense_depthmap", "views")[..., 0].astype(np.float64)
    dense_view = np.broadcast_to(has_dense[:, None, None], keep.shape)
    labelled = s.valid & (s.gt_z > 0)
    # sky = dense GT 0 and no LiDAR label (a resampled dense map can be 0 at a pixel the LiDAR hit: not sky)
    in_dense, from_sky = dense_view[keep][xy], (dense_view & (dense == 0) & ~labelled)[keep][xy]
    pred_z = np.where(keep, s.pred_cam[..., 2], 0.0)  # a pixel that is no point has depth 0
    unl = unlabelled_depth_errors(pred_z[has_dense], dense[has_dense], labelled[has_dense])
    sky_cand = dense_view & ~labelled  # the pixels sky_below_ratio looks at (its sky: dense 0 among them)
    dist = np.linalg.norm(s.pred_cam[sky_cand].astype(np.float64), axis=-1)
    return {
        **out,
        "sky_float_ratio": sky_float_ratio(pred_E[in_dense], from_sky[in_dense], cfg.z_max),
        "unlabelled_depth_abs_rel": unl["abs_rel"], "unlabelled_depth_mae": unl["mae"],
        "sky_below_ratio": sky_below_ratio(dist, dense[sky_cand], cfg.sky_max_dist, keep[sky_cand]),
    }


def _pred_pixels(preds, s: _Sample, cfg) -> np.ndarray:
    """(V, H, W) bool: the predicted pixels that are points: finite, in front of their camera (z > 0),
    optionally only the model's unmasked pixels."""
    keep = np.isfinite(s.pred_pts).all(-1) & (s.pred_cam[..., 2] > 0)
    if cfg.use_pred_mask:
        keep &= _stack(preds, "non_ambiguous_mask", "preds").astype(bool)
    return keep


def _pred_cloud_ego_lidar(preds, s: _Sample, cfg, keep: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) the predicted points that count (``keep``, default :func:`_pred_pixels`), in the ego LiDAR frame,
    re-expressed relative to the predicted view 0."""
    T_L_from_predworld = s.T_L_from_cam[0] @ np.linalg.inv(s.pred_pose[0])
    keep = _pred_pixels(preds, s, cfg) if keep is None else keep
    return transform_points(T_L_from_predworld, s.pred_pts[keep].astype(np.float64))


def frame_clouds(views, preds, lidar_pts_ego_lidar, cfg: MetricsConfig | None = None) -> dict[str, np.ndarray]:
    """The clouds ``frame_metrics`` compares, for saving (filtering, pictures); all in the ego LiDAR frame (RH).

    Returns:
        pred_points (N, 3) float32, pred_conf (N,) float32, pred_view (N,) int16 (view index of each point),
        gt_points (M, 3) float32, boxes_pose (K, 4, 4) T_egolidar_from_box, boxes_half_extent (K, 3),
        boxes_id (K,) int64, T_ego_from_egolidar (4, 4) (the ego vehicle frame: z = height above the ground).
    """
    cfg = MetricsConfig() if cfg is None else cfg
    s = _gather(views, preds)
    keep = _pred_pixels(preds, s, cfg)
    conf = _stack(preds, "conf", "preds") if "conf" in preds[0] else np.ones(keep.shape, np.float32)
    view_index = np.broadcast_to(np.arange(len(views)).reshape(-1, 1, 1), keep.shape)
    boxes, ext = _gt_boxes_ego_lidar(views, s.T_L_from_cam[0] @ np.linalg.inv(s.gt_pose[0]))
    n = int(to_numpy(views[0]["boxes_count"]).reshape(-1)[0])
    ids = to_numpy(views[0]["boxes_id"])[0][:n]
    return {
        "pred_points": _pred_cloud_ego_lidar(preds, s, cfg).astype(np.float32),
        "pred_conf": conf[keep].astype(np.float32),
        "pred_view": view_index[keep].astype(np.int16),
        "gt_points": as_points("lidar_pts_ego_lidar", lidar_pts_ego_lidar, finite=False).astype(np.float32),
        "boxes_pose": boxes,
        "boxes_half_extent": ext,
        "boxes_id": ids[ids >= 0].astype(np.int64),
        "T_ego_from_egolidar": s.T_E_from_L,
    }


def _cloud_metrics(views, s: _Sample, pred_L: np.ndarray, gt_lidar: np.ndarray, cfg) -> dict[str, float]:
    """Point-cloud, BEV, floating and vehicle columns (in the ego LiDAR / ego vehicle frames)."""
    xr, yr, zr = tuple(cfg.x_range), tuple(cfg.y_range), tuple(cfg.z_range)
    gt_L = gt_lidar[np.isfinite(gt_lidar).all(-1)].astype(np.float64)
    pred_xy = crop_range(pred_L, xr, yr, None)
    pred_in = pred_xy & (pred_L[:, 2] >= zr[0]) & (pred_L[:, 2] <= zr[1])
    gt_in = crop_range(gt_L, xr, yr, zr)
    if cfg.crop_gt_to_frustums:
        H, W = s.valid.shape[-2:]
        K = _stack(views, "camera_intrinsics", "views")
        gt_in[gt_in] = in_any_frustum(gt_L[gt_in], np.linalg.inv(s.T_L_from_cam), K, H, W)
    pc = chamfer_fscore(pred_L[pred_in], gt_L[gt_in], cfg.fscore_threshold, cfg.chunk)
    off = s.T_E_from_L[:2, 3]  # the BEV grid (ego frame) covers the crop box (LiDAR frame)
    bev = bev_metrics(transform_points(s.T_E_from_L, pred_L[pred_in]), transform_points(s.T_E_from_L, gt_L[gt_in]),
                      cell=cfg.bev_cell, z_band=tuple(cfg.bev_z_band), ground_z=0.0,
                      x_range=(xr[0] + off[0], xr[1] + off[0]), y_range=(yr[0] + off[1], yr[1] + off[1]))
    boxes, ext = _gt_boxes_ego_lidar(views, s.T_L_from_cam[0] @ np.linalg.inv(s.gt_pose[0]))
    in_range = crop_range(boxes[:, :3, 3], xr, yr, zr)
    return {
        **pc,
        **{f"bev_{k}": v for k, v in bev.items()},
        "floating_ratio": floating_ratio(transform_points(s.T_E_from_L, pred_L[pred_xy]), cfg.z_max),
        "vehicle_recall": vehicle_recall(pred_L, boxes[in_range], ext[in_range], cfg.vehicle_margin,
                                         cfg.vehicle_min_points),
        "n_pred_points": float(pred_in.sum()), "n_gt_points": float(gt_in.sum()), "n_vehicles": float(in_range.sum()),
    }


def frame_metrics(views, preds, lidar_pts_ego_lidar, cfg: MetricsConfig | None = None) -> dict[str, float]:
    """Every metric column of one sample.

    Args:
        views: list of V batch-view dicts with B = 1 (keys of docs/views.md);
        preds: list of V prediction dicts (MapAnything's outputs, B = 1);
        lidar_pts_ego_lidar: (M, 3) GT LiDAR of the sample's agents fused in the ego LiDAR frame, metres;
        cfg: :class:`MetricsConfig` (or a config node with the same fields); defaults when None.
    Returns:
        dict of floats (NaN where a metric is undefined for this sample): depth_rmse, depth_mae, depth_abs_rel,
        depth_delta1, scale_err, metric_scale_abs_rel, pose_abs_t, pose_abs_r, agent_pose_abs_t, agent_pose_abs_r,
        input_agent_pose_abs_t, input_agent_pose_abs_r, agent_refine_t, agent_refine_r (NaN without shared poses),
        chamfer, chamfer_pred_to_gt, chamfer_gt_to_pred, precision, recall, fscore, bev_iou, bev_precision,
        bev_recall, floating_ratio, sky_below_ratio, sky_float_ratio, unlabelled_depth_abs_rel,
        unlabelled_depth_mae, lidar_float_ratio, vehicle_recall, n_views, n_pred_points, n_gt_points, n_vehicles.
    """
    cfg = MetricsConfig() if cfg is None else cfg
    if len(views) != len(preds) or not views:
        raise ShapeError(f"need one prediction per view: got {len(views)} views and {len(preds)} predictions")
    s = _gather(views, preds)
    gt_lidar = as_points("lidar_pts_ego_lidar", lidar_pts_ego_lidar, finite=False)
    keep = _pred_pixels(preds, s, cfg)
    pred_L = _pred_cloud_ego_lidar(preds, s, cfg, keep)
    row = {
        **_image_metrics(views, s),
        **_cloud_metrics(views, s, pred_L, gt_lidar, cfg),
        **_failure_metrics(views, s, keep, pred_L, gt_lidar, cfg),
        "n_views": float(len(views)),
    }
    return {k: float(v) for k, v in row.items()}
