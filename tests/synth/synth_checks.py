"""Checks shared by the synth tests (the rules are documented in test_synth_depth.py and test_synth_tree.py)."""

from __future__ import annotations

import numpy as np

from coopmap.geometry import (
    box_pose_carla,
    carla_to_matrix,
    intrinsics_from_carla,
    lidar_points_to_camera_cv,
    project,
)


def camera_K(cam) -> np.ndarray:
    """Our K (pixel centres at integers) of a yaml camera block, whose ``intrinsic`` is CARLA's."""
    return intrinsics_from_carla(np.asarray(cam["intrinsic"]))


def depth_agreement(points, meta, k, depth, K=None):
    """(z_hat - z) of the planar points, and counts (in_image, planar), for camera k of one agent frame.

    K: the intrinsics to project with (default: the yaml's, converted by ``intrinsics_from_carla``)."""
    H, W = depth.shape
    cam = meta[f"camera{k}"]
    K = camera_K(cam) if K is None else K
    uv, z = project(lidar_points_to_camera_cv(points, cam["cords"], meta["lidar_pose"]), K)
    inside = (z > 0) & (uv[:, 0] >= 1) & (uv[:, 0] < W - 2) & (uv[:, 1] >= 1) & (uv[:, 1] < H - 2)
    uv, z = uv[inside], z[inside]
    u0, v0 = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    offs = np.arange(-1, 3)
    block = depth[v0[:, None, None] + offs[None, :, None], u0[:, None, None] + offs[None, None, :]]
    valid = (block > 0).all(axis=(1, 2))
    inv = (1.0 / np.where(block > 0, block, 1.0)).reshape(-1, 16)
    du, dv = np.meshgrid(offs, offs)  # (row = dv, col = du), matching the block layout
    A = np.stack([du.ravel(), dv.ravel(), np.ones(16)], 1).astype(np.float64)
    coef = np.linalg.lstsq(A, inv.T, rcond=None)[0]  # (3, n): inverse depth = a du + b dv + c
    residual = np.abs(A @ coef - inv.T).max(0) / inv.max(1)
    planar = valid & (residual < 1e-5)
    frac_u, frac_v = uv[:, 0] - u0, uv[:, 1] - v0
    z_hat = 1.0 / (coef[0] * frac_u + coef[1] * frac_v + coef[2])
    return (z_hat - z)[planar], int(inside.sum()), int(planar.sum())


def sparse_mask(points, meta, k, height: int, width: int) -> np.ndarray:
    """(H, W) bool: pixels of camera k holding >= 1 LiDAR point (nearest pixel centre, z > 0)."""
    cam = meta[f"camera{k}"]
    uv, z = project(lidar_points_to_camera_cv(points, cam["cords"], meta["lidar_pose"]), camera_K(cam))
    col, row = np.round(uv[:, 0]), np.round(uv[:, 1])
    ok = (z > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    mask = np.zeros((height, width), bool)
    mask[row[ok].astype(int), col[ok].astype(int)] = True
    return mask


def world_points(rows, meta) -> np.ndarray:
    """(N, 3) world points of .pcd rows through the yaml's ``lidar_pose``."""
    T = carla_to_matrix(meta["lidar_pose"])
    return rows[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]


def inside_box(pts_world, v, margin: float) -> np.ndarray:
    """(N,) bool: points inside a yaml vehicle box grown by ``margin`` metres (box centre rotated with the car)."""
    T = carla_to_matrix(box_pose_carla(v["location"], v["center"], v["angle"], rotate_center=True))
    local = (pts_world - T[:3, 3]) @ T[:3, :3]
    return np.all(np.abs(local) <= np.asarray(v["extent"]) + margin, axis=1)


def listing_errors(frames, read_rows) -> list[str]:
    """Vehicles listed but not hit, or hit but not listed, over ``frames`` = [(agent dir, stamp, meta)].

    Noise-free clouds only: a vehicle is hit if a return off the road (world z > 1 cm) lies within 2 cm of its box.
    The known vehicles of a timestamp are those any agent lists (the agent itself excluded).
    """
    errors = []
    for agent, stamp, meta in frames:
        known = {vid: v for _, s, m in frames if s == stamp for vid, v in m["vehicles"].items()}
        known.pop(int(agent.name), None)
        pts = world_points(read_rows(agent, stamp), meta)
        pts = pts[pts[:, 2] > 0.01]
        for vid, v in known.items():
            hit = bool(inside_box(pts, v, 0.02).any())
            if hit != (vid in meta["vehicles"]):
                errors.append(f"{agent.name}/{stamp}: vehicle {vid} listed={vid in meta['vehicles']} hit={hit}")
    return errors
