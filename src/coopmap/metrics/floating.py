"""Spurious geometry: points floating above the scene, and sky predicted at a finite distance."""

from __future__ import annotations

import math

import numpy as np

from coopmap.metrics._arrays import as_points, same_shape, to_numpy


def floating_ratio(pts_ego, z_max: float = 4.0, ground_z: float = 0.0) -> float:
    """Fraction of the points more than ``z_max`` metres above the ground (strictly): the "floating layer".

    Args:
        pts_ego: (N, 3) metres in a z-up frame with the ground at ``ground_z`` (the ego vehicle frame, ground 0).
    Returns:
        float; NaN for an empty cloud.
    """
    p = as_points("pts_ego", pts_ego, finite=False)
    if len(p) == 0:
        return math.nan
    return float(np.count_nonzero(p[:, 2] - ground_z > z_max) / len(p))


def sky_below_ratio(pred_dist, dense_gt, max_dist: float = 100.0) -> float:
    """Fraction of the sky pixels (dense GT depth == 0) whose predicted distance is below ``max_dist`` metres.

    Args:
        pred_dist: (*S) predicted distance along the ray (or z-depth), metres; dense_gt: (*S) dense GT depth,
            0 = sky (synthetic scenes only).
    Returns:
        float; NaN when no pixel is sky. A non-finite prediction counts as "not below".
    """
    d, g = to_numpy(pred_dist, np.float64), to_numpy(dense_gt, np.float64)
    same_shape(pred_dist=d, dense_gt=g)
    sky = g == 0
    n_sky = int(np.count_nonzero(sky))
    if n_sky == 0:
        return math.nan
    return float(np.count_nonzero(d[sky] < max_dist) / n_sky)
