"""Spurious geometry: points floating above the scene, sky predicted at a finite distance, and the depth of the
pixels that have no LiDAR label (definitions: docs/metrics.md, "Spurious geometry").

Heights are z in a z-up frame whose ground is at ``ground_z`` (the ego vehicle frame, ground 0).
"""

from __future__ import annotations

import math

import numpy as np
from pykdtree.kdtree import KDTree

from coopmap.metrics._arrays import as_points, same_shape, to_numpy


def floating_ratio(pts_ego, z_max: float = 4.0, ground_z: float = 0.0) -> float:
    """Fraction of the points more than ``z_max`` metres above the ground (strictly), whatever they are: facades,
    poles and trees above ``z_max`` count too (the dense GT of the synthetic towns scores ~0.2).

    Args:
        pts_ego: (N, 3) metres in a z-up frame with the ground at ``ground_z`` (the ego vehicle frame, ground 0).
    Returns:
        float; NaN for an empty cloud.
    """
    p = as_points("pts_ego", pts_ego, finite=False)
    if len(p) == 0:
        return math.nan
    return float(np.count_nonzero(p[:, 2] - ground_z > z_max) / len(p))


def sky_float_ratio(pts_ego, from_sky, z_max: float = 4.0, ground_z: float = 0.0) -> float:
    """Fraction of the points that come from a sky pixel (dense GT depth 0) **and** lie more than ``z_max`` above
    the ground (strictly): the floating layer as dense GT sees it (facades do not count).

    Args:
        pts_ego: (N, 3) predicted points (the in-range cloud), metres, z-up frame; from_sky: (N,) bool, whether
            each point's pixel is sky.
    Returns:
        float; NaN for an empty cloud.
    """
    p = as_points("pts_ego", pts_ego, finite=False)
    sky = to_numpy(from_sky, bool)
    same_shape(points=np.empty(len(p)), from_sky=sky)
    if len(p) == 0:
        return math.nan
    return float(np.count_nonzero(sky & (p[:, 2] - ground_z > z_max)) / len(p))


def lidar_float_ratio(pts_ego, lidar_ego, z_max: float = 4.0, radius: float = 2.0, margin: float = 2.0,
                      ground_z: float = 0.0) -> float:
    """Fraction of the points more than ``z_max`` above the ground (strictly) that no GT LiDAR return supports:
    no LiDAR point higher than ``z_max - margin`` within ``radius`` metres horizontally (xy distance <= radius).
    The floating layer as real OPV2V (LiDAR only) can measure it: a facade the LiDAR hit up high is not counted.

    Args:
        pts_ego: (N, 3) predicted points (the in-range cloud); lidar_ego: (M, 3) GT LiDAR, both in the same z-up
            frame (metres); non-finite LiDAR points are ignored.
    Returns:
        float; NaN for an empty predicted cloud.
    """
    p = as_points("pts_ego", pts_ego, finite=False)
    g = as_points("lidar_ego", lidar_ego, finite=False)
    if len(p) == 0:
        return math.nan
    high = p[np.isfinite(p).all(-1) & (p[:, 2] - ground_z > z_max)]
    g = g[np.isfinite(g).all(-1)]
    support = g[g[:, 2] - ground_z > z_max - margin]
    if len(high) == 0 or len(support) == 0:
        return float(len(high) / len(p))
    centre = support[:, :2].mean(0)
    tree = KDTree(np.ascontiguousarray(support[:, :2] - centre, dtype=np.float64))
    _, nearest = tree.query(np.ascontiguousarray(high[:, :2] - centre, dtype=np.float64), k=1)
    d = np.linalg.norm(high[:, :2] - support[nearest.astype(np.int64), :2], axis=-1)  # exact, float64
    return float(np.count_nonzero(d > radius) / len(p))


def unlabelled_depth_errors(pred_z, dense_gt, labelled) -> dict[str, float]:
    """Depth errors on the pixels without a LiDAR label that dense GT says are not sky.

    Args:
        pred_z: (*S) predicted z-depth (metres; a masked pixel has 0 and counts with error |0 - z|); dense_gt: (*S)
            dense GT z-depth, 0 = sky; labelled: (*S) bool, the pixels with a LiDAR label.
    Returns:
        ``abs_rel`` = mean |p - z| / z and ``mae`` = mean |p - z| (metres) over ``~labelled & (dense > 0)``;
        NaN when there is no such pixel.
    """
    p, z, lab = to_numpy(pred_z, np.float64), to_numpy(dense_gt, np.float64), to_numpy(labelled, bool)
    same_shape(pred_z=p, dense_gt=z, labelled=lab)
    sel = ~lab & (z > 0)
    if not sel.any():
        return {"abs_rel": math.nan, "mae": math.nan}
    err = np.abs(p[sel] - z[sel])
    return {"abs_rel": float(np.mean(err / z[sel])), "mae": float(np.mean(err))}


def sky_below_ratio(pred_dist, dense_gt, max_dist: float = 100.0, is_point=None) -> float:
    """Fraction of the sky pixels (dense GT depth == 0) predicted as a point closer than ``max_dist`` metres.

    A pixel without a predicted point (masked: distance 0, not finite, or ``is_point`` False) is not "closer":
    a model that masks the sky, or puts it beyond ``max_dist``, scores 0.

    Args:
        pred_dist: (*S) predicted distance along the ray (or z-depth), metres; dense_gt: (*S) dense GT depth,
            0 = sky (synthetic scenes only); is_point: (*S) bool, the pixels that are predicted points (default:
            finite distance > 0).
    Returns:
        float; NaN when no pixel is sky.
    """
    d, g = to_numpy(pred_dist, np.float64), to_numpy(dense_gt, np.float64)
    same_shape(pred_dist=d, dense_gt=g)
    point = np.isfinite(d) & (d > 0)
    if is_point is not None:
        extra = to_numpy(is_point, bool)
        same_shape(pred_dist=d, is_point=extra)
        point &= extra
    sky = g == 0
    n_sky = int(np.count_nonzero(sky))
    if n_sky == 0:
        return math.nan
    return float(np.count_nonzero(sky & point & (d < max_dist)) / n_sky)
