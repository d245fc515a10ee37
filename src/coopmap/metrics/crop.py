"""Cropping point clouds to the evaluated region: an axis-aligned range box and the cameras' frustums."""

from __future__ import annotations

import numpy as np

from coopmap.errors import ShapeError, check_shape
from coopmap.geometry import project, transform_points
from coopmap.metrics._arrays import as_points, to_numpy


def crop_range(
    pts,
    x_range: tuple[float, float] = (-50.0, 50.0),
    y_range: tuple[float, float] = (-50.0, 50.0),
    z_range: tuple[float, float] | None = (-3.0, 4.0),
) -> np.ndarray:
    """Mask of the points inside an axis-aligned box (bounds included).

    Args:
        pts: (N, 3) metres, in the frame the ranges are given in (the ego LiDAR frame in evaluation).
        x_range, y_range, z_range: (low, high) metres; ``z_range=None`` leaves z unbounded.
    Returns:
        (N,) bool.
    """
    p = as_points("pts", pts, finite=False)
    keep = (p[:, 0] >= x_range[0]) & (p[:, 0] <= x_range[1]) & (p[:, 1] >= y_range[0]) & (p[:, 1] <= y_range[1])
    if z_range is not None:
        keep &= (p[:, 2] >= z_range[0]) & (p[:, 2] <= z_range[1])
    return keep


def frustum_mask(pts, T_cam_from_frame, K, height: int, width: int) -> np.ndarray:
    """Mask of the points that one pinhole camera sees (in front of it and inside its image).

    Pixel centres are at integers, so the image covers u in [-0.5, W - 0.5) and v in [-0.5, H - 0.5).

    Args:
        pts: (N, 3) metres in some frame; T_cam_from_frame: (4, 4) that frame into the OpenCV camera frame;
        K: (3, 3) intrinsics at the (height, width) resolution.
    Returns:
        (N,) bool.
    """
    p = as_points("pts", pts, finite=False)
    T = to_numpy(T_cam_from_frame, np.float64)
    K = to_numpy(K, np.float64)
    check_shape("T_cam_from_frame", T, (4, 4))
    check_shape("K", K, (3, 3))
    pts_cam = transform_points(T, p.astype(np.float64, copy=False))
    in_front = pts_cam[:, 2] > 0
    safe = np.where(in_front[:, None], pts_cam, np.array([0.0, 0.0, 1.0]))  # no division by z <= 0
    uv, _ = project(safe, K)
    u, v = uv[:, 0], uv[:, 1]
    return in_front & (u >= -0.5) & (u < width - 0.5) & (v >= -0.5) & (v < height - 0.5)


def in_any_frustum(pts, T_cam_from_frame, K, height: int, width: int) -> np.ndarray:
    """Mask of the points seen by at least one of V cameras (the union of their frustums).

    Args:
        pts: (N, 3); T_cam_from_frame: (V, 4, 4); K: (V, 3, 3) or (3, 3) shared; height, width: image size.
    Returns:
        (N,) bool.
    """
    T = to_numpy(T_cam_from_frame, np.float64)
    K = to_numpy(K, np.float64)
    check_shape("T_cam_from_frame", T, (None, 4, 4))
    if K.ndim == 2:
        K = np.broadcast_to(K, (len(T), 3, 3))
    if K.shape != (len(T), 3, 3):
        raise ShapeError(f"K: expected shape (3, 3) or ({len(T)}, 3, 3) for {len(T)} cameras, got {K.shape}")
    p = as_points("pts", pts, finite=False)
    keep = np.zeros(len(p), dtype=bool)
    for T_i, K_i in zip(T, K):
        rest = ~keep
        keep[rest] = frustum_mask(p[rest], T_i, K_i, height, width)
    return keep
