"""Depth and scale errors in metres, without rescaling the prediction.

Every function takes maps of any (matching) shape, e.g. (V, H, W) for the views of a sample, numpy or torch,
and reduces over the pixels where ``valid`` is True (the GT-valid pixels): one number per sample.
"""

from __future__ import annotations

import math

import numpy as np

from coopmap.errors import check_shape
from coopmap.metrics._arrays import same_shape, to_numpy


def _masked(pred, gt, valid) -> tuple[np.ndarray, np.ndarray]:
    p, g, m = to_numpy(pred, np.float64), to_numpy(gt, np.float64), to_numpy(valid).astype(bool)
    same_shape(pred=p, gt=g, valid=m)
    return p[m], g[m]


def depth_metrics(pred_z, gt_z, valid) -> dict[str, float]:
    """RMSE, MAE (metres), AbsRel and delta < 1.25 of predicted against GT z-depth over the valid pixels.

    - ``rmse`` = sqrt(mean (p - g)^2), ``mae`` = mean |p - g|, ``abs_rel`` = mean |p - g| / g;
    - ``delta1`` = fraction with p > 0 and max(p / g, g / p) < 1.25.

    Args:
        pred_z, gt_z: (*S) z-depth, metres (GT > 0 where valid); valid: (*S) bool.
    Returns:
        dict of floats; all NaN when no pixel is valid.
    """
    p, g = _masked(pred_z, gt_z, valid)
    if g.size == 0:
        return dict.fromkeys(("rmse", "mae", "abs_rel", "delta1"), math.nan)
    err = p - g
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(p / g, g / p)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "abs_rel": float(np.mean(np.abs(err) / g)),
        "delta1": float(np.mean((p > 0) & (ratio < 1.25))),
    }


def scale_err(pred_z, gt_z, valid) -> float:
    """|median over valid pixels of (pred z-depth / GT z-depth) - 1|: the global metric-scale error.

    Args:
        pred_z, gt_z: (*S) z-depth, metres; valid: (*S) bool.
    Returns:
        float (NaN when no pixel is valid).
    """
    p, g = _masked(pred_z, gt_z, valid)
    if g.size == 0:
        return math.nan
    return float(abs(np.median(p / g) - 1.0))


def avg_dis(pts, valid) -> float:
    """MapAnything's normaliser: mean Euclidean norm of the points over the valid pixels.

    Args:
        pts: (*S, 3) metres, in the frame the norm is taken in (view 0); valid: (*S) bool.
    """
    p, m = to_numpy(pts, np.float64), to_numpy(valid).astype(bool)
    check_shape("pts", p, ("*", 3))
    same_shape(pts_pixels=p[..., 0], valid=m)
    if not m.any():
        return math.nan
    return float(np.linalg.norm(p[m], axis=-1).mean())


def metric_scale_abs_rel(pred_pts, gt_pts, valid) -> float:
    """MapAnything's ``metric_scale_abs_rel`` (spec section 7): ``|s_pred - s_gt| / s_gt``, s = :func:`avg_dis`.

    Args:
        pred_pts: (*S, 3) predicted metric points in the predicted view-0 frame;
        gt_pts: (*S, 3) GT points in the GT view-0 frame; valid: (*S) GT-valid pixels.
    """
    s_pred, s_gt = avg_dis(pred_pts, valid), avg_dis(gt_pts, valid)
    if not s_gt > 0:
        return math.nan
    return float(abs(s_pred - s_gt) / s_gt)
