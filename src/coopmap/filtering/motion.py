"""Ego motion between frames: from the GT LiDAR poses, or estimated from the predicted clouds by ICP.

``T_cur_from_prev`` maps points of the previous frame's ego LiDAR frame into the current one (right-handed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import roma
import torch
from pykdtree.kdtree import KDTree

from coopmap.errors import check_shape
from coopmap.filtering.filters import _coherent_order, apply_transform, voxel_downsample
from coopmap.metrics._arrays import as_points, to_numpy


def gt_motion(T_world_from_cur, T_world_from_prev) -> np.ndarray:
    """T_cur_from_prev = inv(T_world_from_cur) T_world_from_prev from two GT ego LiDAR poses (4, 4) -> (4, 4)."""
    a, b = to_numpy(T_world_from_cur, np.float64), to_numpy(T_world_from_prev, np.float64)
    check_shape("T_world_from_cur", a, (4, 4))
    check_shape("T_world_from_prev", b, (4, 4))
    return np.linalg.solve(a, b)


@dataclass(frozen=True)
class IcpResult:
    """Outcome of :func:`icp`: the transform, whether it is usable, and its last correspondences' statistics."""

    T_dst_from_src: np.ndarray  # (4, 4)
    ok: bool  # False: too few correspondences at some stage (T is then the last usable estimate)
    rmse: float  # metres, over the last iteration's correspondences
    n_corr: int  # correspondences of the last iteration
    iterations: int  # total over the stages


def rigid_fit(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rigid T (4, 4) minimising sum |T a_i - b_i|^2 (Kabsch): the rotation is roma's ``special_procrustes`` of
    the cross-covariance, which numpy accumulates (as ``umeyama_alignment(with_scale=False)``, without torch's
    per-call overhead on large point sets). a, b: (N, 3) corresponding points."""
    ca, cb = a.mean(0), b.mean(0)
    M = (b - cb).T @ (a - ca)  # sum_i (b_i - cb)(a_i - ca)^T
    R = roma.special_procrustes(torch.from_numpy(M)).numpy()
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, cb - R @ ca
    return T


def icp(src, dst, init=None, max_corr=(2.0, 1.0, 0.5, 0.25), iters: int = 15, min_corr: int = 30,
        tol: float = 1e-5, max_src: int = 20000) -> IcpResult:
    """Point-to-point ICP: the rigid T with ``dst ~ T src``, coarse to fine.

    Each stage runs up to ``iters`` iterations with correspondences = each transformed source point's nearest
    destination point (pykdtree) closer than that stage's ``max_corr`` metres; every iteration solves the rigid
    least-squares alignment of the correspondences (:func:`rigid_fit`, Kabsch via roma) and
    composes it; a stage ends early when the update moves by less than ``tol`` (metres, and radians).

    Args:
        src: (N, 3), dst: (M, 3) metres; init: (4, 4) initial T_dst_from_src (identity when None);
        max_corr: correspondence distance of each stage, metres (decreasing); min_corr: fewest correspondences
            an iteration needs (else the result is not ok); max_src: source points used at most (an evenly
            strided subset of the spatially sorted source, deterministic; 0: all).
    Returns:
        :class:`IcpResult`.
    """
    s, d = as_points("src", src).astype(np.float64), as_points("dst", dst).astype(np.float64)
    T = np.eye(4) if init is None else to_numpy(init, np.float64).copy()
    check_shape("init", T, (4, 4))
    if len(s) < min_corr or len(d) < min_corr:
        return IcpResult(T, False, math.nan, 0, 0)
    s, d = s[_coherent_order(s)], d[_coherent_order(d)]  # spatially coherent queries: faster, same result
    if 0 < max_src < len(s):
        s = s[np.linspace(0, len(s) - 1, max_src).astype(np.int64)]
    centre = d.mean(0)
    tree = KDTree(np.ascontiguousarray((d - centre).astype(np.float32)))
    n_iter, rmse, n_corr = 0, math.nan, 0
    for dist in max_corr:
        for _ in range(iters):
            moved = apply_transform(T, s)
            nn_d, idx = tree.query((moved - centre).astype(np.float32), k=1, distance_upper_bound=float(dist))
            valid = np.isfinite(nn_d) & (nn_d < dist)
            n_corr = int(valid.sum())
            if n_corr < min_corr:
                return IcpResult(T, False, rmse, n_corr, n_iter)
            a, b = moved[valid], d[idx[valid].astype(np.int64)]
            step = rigid_fit(a, b)
            T = step @ T
            n_iter += 1
            rmse = float(np.sqrt(np.mean(np.sum((apply_transform(step, a) - b) ** 2, axis=1))))
            angle = math.acos(max(-1.0, min(1.0, (np.trace(step[:3, :3]) - 1.0) / 2.0)))
            if np.linalg.norm(step[:3, 3]) < tol and angle < tol:
                break
    return IcpResult(T, True, rmse, n_corr, n_iter)


def estimate_motion(pts_prev, pts_cur, voxel: float = 0.3, max_corr=(2.0, 1.0, 0.5, 0.25), iters: int = 15,
                    min_corr: int = 30) -> IcpResult:
    """T_cur_from_prev estimated from two predicted clouds (each in its own ego LiDAR frame).

    Both clouds are voxel-downsampled (``voxel`` metres, centroids) and the previous one is aligned onto the
    current one by :func:`icp`, initialised at the identity (the motion between two 10 Hz frames is at most a few
    metres and degrees), so the estimate depends on these two clouds only.
    """
    prev, _ = voxel_downsample(pts_prev, voxel) if voxel > 0 else (as_points("pts_prev", pts_prev), None)
    cur, _ = voxel_downsample(pts_cur, voxel) if voxel > 0 else (as_points("pts_cur", pts_cur), None)
    return icp(prev, cur, None, max_corr, iters, min_corr)
