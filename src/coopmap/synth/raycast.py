"""Vectorised ray casting against the ground plane and oriented boxes (slab method), float64.

A ray is ``origin + t * dir``; ``t`` is in units of ``|dir|`` (the cameras use directions with unit optical-axis
component, so ``t`` is the z-depth; the LiDAR uses unit directions, so ``t`` is the range).
"""

from __future__ import annotations

import numpy as np

from coopmap.synth.boxes import GROUND_ID, SKY_ID, Boxes
from coopmap.synth.scene import MapFrame

#: Hits closer than this (in units of t) are ignored: a ray starts just outside any surface.
T_MIN = 1e-6


def ray_box_entry(origin_box, dirs_box, half) -> tuple[np.ndarray, np.ndarray]:
    """Where rays enter an axis-aligned box centred on the origin of its own frame.

    Args:
        origin_box: (3,) ray origin in the box frame (outside the box).
        dirs_box: sequence of 3 arrays of a common shape S: the direction components in the box frame.
        half: (3,) half extents.
    Returns:
        t: (S,) entry parameter, ``inf`` where the ray misses the box or the box lies behind the origin;
        face: (S,) int8 ``2 * axis + (dir[axis] < 0)``: the entry face's outward normal is ``+e_axis`` when the
        code is odd, ``-e_axis`` when even.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        slabs = []
        for k in range(3):
            inv = 1.0 / dirs_box[k]
            t1 = (-half[k] - origin_box[k]) * inv
            t2 = (half[k] - origin_box[k]) * inv
            slabs.append((np.minimum(t1, t2), np.maximum(t1, t2)))
    t_near, t_far = slabs[0]
    near_axis = np.zeros(np.shape(t_near), dtype=np.int8)
    for k in (1, 2):
        lo, hi = slabs[k]
        better = lo > t_near
        t_near = np.where(better, lo, t_near)
        near_axis[better] = k
        t_far = np.minimum(t_far, hi)
    hit = (t_near <= t_far) & (t_near > T_MIN)
    t = np.where(hit, t_near, np.inf)
    d_axis = np.choose(near_axis, [np.broadcast_to(d, t.shape) for d in dirs_box])
    face = (2 * near_axis + (d_axis < 0)).astype(np.int8)
    return t, face


def ground_hits(origin, dirs, frame: MapFrame) -> np.ndarray:
    """Parameter t where rays meet the ground (the plane z = 0 inside the map's square), ``inf`` elsewhere.

    Args:
        origin: (3,) world; dirs: (..., 3) world directions.
    Returns:
        (...,) t.
    """
    dz = dirs[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dz < 0, -origin[2] / dz, np.inf)
    finite = np.isfinite(t)
    t0 = np.where(finite, t, 0.0)
    x, y = frame.to_map_xy(origin[0] + t0 * dirs[..., 0], origin[1] + t0 * dirs[..., 1])
    inside = finite & (np.abs(x) <= frame.ground_half) & (np.abs(y) <= frame.ground_half) & (t > T_MIN)
    return np.where(inside, t, np.inf)


def cast_naive(origin, dirs, boxes: Boxes, frame: MapFrame) -> tuple[np.ndarray, np.ndarray]:
    """Reference caster: every ray against the ground and every box, no culling (for tests).

    Args:
        origin: (3,) world; dirs: (M, 3) world directions.
    Returns:
        t: (M,) nearest hit (inf = sky); surface: (M,) box index, ``GROUND_ID`` or ``SKY_ID``.
    """
    t = ground_hits(origin, dirs, frame)
    surface = np.where(np.isfinite(t), GROUND_ID, SKY_ID).astype(np.int64)
    for i in range(len(boxes)):
        R = boxes.rot[i]
        o_box = R.T @ (origin - boxes.center[i])
        d_box = dirs @ R
        ti, _ = ray_box_entry(o_box, (d_box[:, 0], d_box[:, 1], d_box[:, 2]), boxes.half[i])
        closer = ti < t
        t = np.where(closer, ti, t)
        surface[closer] = i
    return t, surface
