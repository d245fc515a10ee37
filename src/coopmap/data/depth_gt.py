"""Sparse depth ground truth from LiDAR (spec section 7), computed at the *output* resolution.

Points are projected with the output intrinsics (never a resized sparse map): pixel (u, v) owns the continuous
coordinates [u - 0.5, u + 0.5) x [v - 0.5, v + 0.5) (centres at integers) and keeps its nearest return
(z-buffer). With several agents' LiDAR fused, returns hidden from the camera (seen by another agent around an occluder) are
removed by a visibility test: every return is splatted as a disc of ``radius`` metres (its image radius
``fx * radius / z`` pixels, so near surfaces cover more pixels than far ones) and a return is dropped when a splat
covering its pixel is more than ``rel_tol`` (relative) nearer. Sizing the splats in metres rather than pixels
keeps a slanted surface (the road seen at a grazing angle) from hiding its own farther samples: along the road,
a splat of radius r hides depths beyond z / (1 - r / h) only (camera height h), e.g. 11 % for r = 0.1 m, h = 1 m.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import minimum_filter

__all__ = ["zbuffer_depth", "occlusion_filter", "sparse_depth", "points_to_camera"]

MIN_DEPTH = 1e-3  # metres; returns closer than this to the camera plane are ignored


def points_to_camera(T_cam_from_src: np.ndarray, pts_src: np.ndarray) -> np.ndarray:
    """(4, 4) transform, (N, 3) points -> (N, 3) float64 points in the camera frame."""
    T = np.asarray(T_cam_from_src, dtype=np.float64)
    return np.asarray(pts_src, dtype=np.float64) @ T[:3, :3].T + T[:3, 3]


def zbuffer_depth(pts_cam: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest return per pixel.

    Args:
        pts_cam: (N, 3) metres, OpenCV camera frame.
        K: (3, 3) intrinsics at the output resolution.
        size: (W, H) output size.
    Returns:
        (H, W) float32 z-depth, 0 where no return.
    """
    W, H = size
    pts = np.asarray(pts_cam, dtype=np.float64)
    z = pts[:, 2]
    front = z > MIN_DEPTH
    pts, z = pts[front], z[front]
    col = np.floor(K[0, 0] * pts[:, 0] / z + K[0, 2] + 0.5)
    row = np.floor(K[1, 1] * pts[:, 1] / z + K[1, 2] + 0.5)
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H)
    pix = (row[inside] * W + col[inside]).astype(np.int64)
    z = z[inside]
    depth = np.zeros(H * W, dtype=np.float32)
    if pix.size:
        order = np.lexsort((z, pix))  # by pixel, nearest first
        pix, z = pix[order], z[order]
        first = np.ones(pix.size, dtype=bool)
        first[1:] = pix[1:] != pix[:-1]
        depth[pix[first]] = z[first]
    return depth.reshape(H, W)


def occlusion_filter(depth: np.ndarray, fx: float, radius: float = 0.1, rel_tol: float = 0.12,
                     max_px: int = 12) -> np.ndarray:
    """Drop returns that lie behind a nearer return's splat (see module doc).

    Args:
        depth: (H, W) sparse z-depth, 0 = none.
        fx: focal length in pixels (at the resolution of ``depth``).
        radius: splat radius in metres (<= 0 disables the test).
        rel_tol: kept iff depth <= (1 + rel_tol) * the nearest splat covering the pixel.
        max_px: largest splat radius in pixels (for returns very close to the camera).
    Returns:
        (H, W) float32, the kept returns.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if radius <= 0:
        return depth.copy()
    filled = depth > 0
    rad = np.zeros(depth.shape, dtype=np.int64)
    rad[filled] = np.minimum(np.floor(fx * radius / depth[filled]), max_px).astype(np.int64)
    nearest = np.full(depth.shape, np.inf, dtype=np.float32)
    for r in np.unique(rad[rad >= 1]).tolist():
        layer = np.where(rad == r, depth, np.float32(np.inf))
        np.minimum(nearest, minimum_filter(layer, size=2 * r + 1, mode="constant", cval=np.inf), out=nearest)
    keep = filled & (depth <= nearest * (1.0 + rel_tol))
    return np.where(keep, depth, 0).astype(np.float32)


def sparse_depth(pts_cam_sources: list[np.ndarray], K: np.ndarray, size: tuple[int, int],
                 occlusion_radius: float = 0.0, occlusion_rel_tol: float = 0.12) -> np.ndarray:
    """Z-buffered sparse depth of one or several point sets already in the camera frame.

    Args:
        pts_cam_sources: list of (N_i, 3) point sets (one per agent's LiDAR), OpenCV camera frame, metres.
        K: (3, 3) output intrinsics; size: (W, H).
        occlusion_radius, occlusion_rel_tol: visibility test in metres / relative (see :func:`occlusion_filter`);
            a radius of 0 disables it.
    Returns:
        (H, W) float32 z-depth, 0 = no return.
    """
    pts = np.concatenate(pts_cam_sources, axis=0) if pts_cam_sources else np.zeros((0, 3))
    depth = zbuffer_depth(pts, K, size)
    if occlusion_radius > 0:
        depth = occlusion_filter(depth, float(K[0, 0]), occlusion_radius, occlusion_rel_tol)
    return depth
