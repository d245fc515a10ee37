"""Hand-made static scenes and frames for the filtering tests.

World frame W: right-handed, z up, ground at z = 0. The ego LiDAR sits 1.9 m above the ego vehicle origin (on the
ground), so in every frame T_ego_from_egolidar = translation (-0.5, 0, 1.9) and heights above the ground are
LiDAR z + 1.9.
"""

from __future__ import annotations

import numpy as np

from scene_frames import T_EGO_FROM_LIDAR, rigid  # noqa: F401  (re-exported for the tests)


def box_surface(rng, n: int, centre, half, yaw_deg: float = 0.0) -> np.ndarray:
    """n points uniformly on the faces of a box (centre, half extents, yaw), world frame."""
    half = np.asarray(half, dtype=np.float64)
    local = rng.uniform(-1, 1, (n, 3)) * half
    face = rng.integers(0, 3, n)
    rows = np.arange(n)
    local[rows, face] = np.where(rng.random(n) < 0.5, -1.0, 1.0) * half[face]
    T = rigid(yaw_deg, centre)
    return local @ T[:3, :3].T + T[:3, 3]


def street(rng, n: int) -> np.ndarray:
    """A static street in the world frame: ground, two facades (y = +-12), two cross walls, poles, a parked car."""
    kind = rng.choice(5, n, p=[0.45, 0.25, 0.12, 0.08, 0.10])
    p = np.c_[rng.uniform(-30, 50, n), rng.uniform(-12, 12, n), np.zeros(n)]
    w = kind == 1
    p[w, 1] = rng.choice([-12.0, 12.0], w.sum())
    p[w, 2] = rng.uniform(0, 3.5, w.sum())
    c = kind == 2
    p[c, 0] = rng.choice([-30.0, 50.0], c.sum())
    p[c, 2] = rng.uniform(0, 3.5, c.sum())
    poles = np.array([[-10.0, -8.0], [3.0, 7.0], [15.0, -9.0], [28.0, 6.0], [40.0, -5.0]])
    b = kind == 3
    k, ang = rng.integers(0, len(poles), b.sum()), rng.uniform(0, 2 * np.pi, b.sum())
    p[b] = np.c_[poles[k, 0] + 0.3 * np.cos(ang), poles[k, 1] + 0.3 * np.sin(ang), rng.uniform(0, 3.0, b.sum())]
    car = kind == 4
    p[car] = box_surface(rng, int(car.sum()), PARKED_CENTRE, CAR_HALF, 20.0)
    return p


PARKED_CENTRE = (20.0, 5.0, 0.8)
CAR_HALF = (2.3, 1.0, 0.8)


def to_lidar(T_world_from_lidar: np.ndarray, pts_world: np.ndarray) -> np.ndarray:
    T = np.linalg.inv(T_world_from_lidar)
    return pts_world @ T[:3, :3].T + T[:3, 3]


def ego_pose(i: int, speed: float = 1.0, yaw_rate: float = 1.0) -> np.ndarray:
    """T_world_from_egolidar of frame i: the ego drives along x at ``speed`` m per frame, turning slowly."""
    return rigid(yaw_rate * i, (speed * i, 0.3 * i, 1.9))


def frame_arrays(pts_lidar, T_world_from_lidar, boxes_world=(), conf=None, gt_lidar=None) -> dict[str, np.ndarray]:
    """The arrays of a saved eval frame (keys of coopmap.filtering.frames.REQUIRED).

    boxes_world: sequence of (T_world_from_box (4, 4), half extents (3,)).
    """
    pts = np.asarray(pts_lidar, dtype=np.float32)
    T_L_from_W = np.linalg.inv(T_world_from_lidar)
    poses = np.array([T_L_from_W @ T for T, _ in boxes_world]).reshape(-1, 4, 4)
    ext = np.array([e for _, e in boxes_world], dtype=np.float64).reshape(-1, 3)
    return {
        "pred_points": pts,
        "pred_conf": np.full(len(pts), 2.0, np.float32) if conf is None else np.asarray(conf, np.float32),
        "pred_view": np.zeros(len(pts), np.int16),
        "gt_points": (pts if gt_lidar is None else np.asarray(gt_lidar)).astype(np.float32),
        "boxes_pose": poses,
        "boxes_half_extent": ext,
        "boxes_id": np.arange(len(poses), dtype=np.int64),
        "T_ego_from_egolidar": T_EGO_FROM_LIDAR.copy(),
        "T_world_from_egolidar": np.asarray(T_world_from_lidar, dtype=np.float64),
    }
