"""Vehicle recall: are the GT vehicles reconstructed at all (enough predicted points inside their boxes)?"""

from __future__ import annotations

import math

import numpy as np

from coopmap.errors import ShapeError, check_shape
from coopmap.metrics._arrays import as_points, to_numpy


def _boxes(boxes_pose, boxes_half_extent) -> tuple[np.ndarray, np.ndarray]:
    T = to_numpy(boxes_pose, np.float64)
    e = to_numpy(boxes_half_extent, np.float64)
    check_shape("boxes_pose", T, (None, 4, 4))
    check_shape("boxes_half_extent", e, (None, 3))
    if len(T) != len(e):
        raise ShapeError(f"{len(T)} box poses but {len(e)} half extents")
    return T, e


def points_in_boxes(pts, boxes_pose, boxes_half_extent, margin: float = 0.0) -> np.ndarray:
    """Number of points inside each box grown by ``margin`` on every side.

    A point p is inside box k iff ``|inv(T_k) p| <= e_k + margin`` component-wise. The points within the boxes'
    common bounds are sorted by x once; each box then tests only its contiguous x slice, first against its
    axis-aligned bounds, so the cost is ~ N log N + the points near the boxes.

    Args:
        pts: (N, 3) metres; boxes_pose: (K, 4, 4) T_frame_from_box in the same frame (box frame: x along the
            length, y left, z up, origin at the centre); boxes_half_extent: (K, 3) half length, width, height.
    Returns:
        (K,) int64 counts.
    """
    p = as_points("pts", pts, finite=False)
    T, e = _boxes(boxes_pose, boxes_half_extent)
    counts = np.zeros(len(T), dtype=np.int64)
    if len(T) == 0 or len(p) == 0:
        return counts
    e = e + margin
    half = np.einsum("kij,kj->ki", np.abs(T[:, :3, :3]), e) + 1e-9  # axis-aligned half sizes of each box
    lo, hi = T[:, :3, 3] - half, T[:, :3, 3] + half
    near = np.all((p >= lo.min(0)) & (p <= hi.max(0)), axis=1)
    p = p[near]
    p = p[np.argsort(p[:, 0], kind="stable")]
    for k in range(len(T)):
        a = int(np.searchsorted(p[:, 0], lo[k, 0], side="left"))
        b = int(np.searchsorted(p[:, 0], hi[k, 0], side="right"))
        cand = p[a:b]
        cand = cand[np.all((cand >= lo[k]) & (cand <= hi[k]), axis=1)]
        local = (cand.astype(np.float64) - T[k, :3, 3]) @ T[k, :3, :3]  # rows R^T (p - t)
        counts[k] = np.count_nonzero(np.all(np.abs(local) <= e[k], axis=1))
    return counts


def vehicle_recall(pred_pts, boxes_pose, boxes_half_extent, margin: float = 0.2, min_points: int = 10) -> float:
    """Fraction of the given GT vehicles with at least ``min_points`` predicted points inside their box + margin.

    The caller passes the vehicles to evaluate (in evaluation: those whose centre is in the evaluated range).

    Args:
        pred_pts: (N, 3) predicted points; boxes_pose: (K, 4, 4) T_frame_from_box, same frame;
        boxes_half_extent: (K, 3) metres; margin: metres added to every half extent.
    Returns:
        float; NaN when K = 0.
    """
    counts = points_in_boxes(pred_pts, boxes_pose, boxes_half_extent, margin)
    if len(counts) == 0:
        return math.nan
    return float(np.count_nonzero(counts >= min_points) / len(counts))
