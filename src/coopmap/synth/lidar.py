"""A CARLA-style rotating LiDAR: one full sweep per frame, ray-cast against the ground and the boxes.

Channel c points at elevation ``upper - c (upper - lower) / (channels - 1)``, column j at azimuth ``j * 360 / n``
measured from the sensor's x axis towards its y axis (UE axes: x forward, y right, z up). A return is kept if its
range is within ``range``; ``dropoff_general_rate`` of the rays are dropped at random; the range gets Gaussian
noise along the ray; intensity = exp(-atmosphere_attenuation_rate * range) (CARLA's model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coopmap.geometry import carla_to_matrix
from coopmap.synth.boxes import GROUND_ID, SKY_ID, Boxes
from coopmap.synth.config import LidarSpec
from coopmap.synth.raycast import ground_hits, ray_box_entry
from coopmap.synth.scene import Scene


@dataclass(frozen=True)
class Sweep:
    """One LiDAR sweep.

    Attributes:
        points: (P, 3) float32 metres in the LiDAR frame (x forward, y right, z up), as written to the .pcd.
        intensity: (P,) float32 in [0, 1].
        surface: (P,) int64 index of the box each point lies on (into the swept Boxes), or GROUND_ID.
    """

    points: np.ndarray
    intensity: np.ndarray
    surface: np.ndarray


def ray_grid(spec: LidarSpec) -> np.ndarray:
    """(channels, azimuth_steps, 3) unit ray directions in the LiDAR frame."""
    elev = np.radians(np.linspace(spec.upper_fov, spec.lower_fov, spec.channels))
    az = np.radians(np.arange(spec.azimuth_steps) * (360.0 / spec.azimuth_steps))
    ce, se = np.cos(elev)[:, None], np.sin(elev)[:, None]
    return np.stack([ce * np.cos(az), ce * np.sin(az), np.broadcast_to(se, (spec.channels, az.size))], -1)


def cast_lidar(scene: Scene, boxes: Boxes, lidar_pose, spec: LidarSpec) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free ranges and surfaces of every ray: ((C, A) range, inf = no return; (C, A) surface id)."""
    T = carla_to_matrix(lidar_pose)
    origin, R = T[:3, 3], T[:3, :3]
    dirs = ray_grid(spec) @ R.T  # world directions
    t = ground_hits(origin, dirs, scene.frame)
    surface = np.where(np.isfinite(t), GROUND_ID, SKY_ID).astype(np.int64)
    for i, rows, cols in _ray_blocks(boxes, origin, R, spec):
        Rb = boxes.rot[i]
        d = dirs[rows][:, cols] @ Rb  # R_box^T d
        ti, _ = ray_box_entry(Rb.T @ (origin - boxes.center[i]), (d[..., 0], d[..., 1], d[..., 2]), boxes.half[i])
        block = t[rows][:, cols]
        closer = ti < block
        if closer.any():
            rr, cc = np.nonzero(closer)
            t[rows.start + rr, cols[cc]] = ti[closer]
            surface[rows.start + rr, cols[cc]] = i
    t = np.where(t <= spec.range, t, np.inf)
    surface[~np.isfinite(t)] = SKY_ID
    return t, surface


def sweep(scene: Scene, boxes: Boxes, lidar_pose, spec: LidarSpec, rng: np.random.Generator,
          noise: bool = True) -> Sweep:
    """One sweep as OPV2V stores it: returned points in the LiDAR frame with intensity."""
    t, surface = cast_lidar(scene, boxes, lidar_pose, spec)
    keep_draw = rng.random(t.shape) >= spec.dropoff_general_rate
    noise_draw = rng.normal(0.0, spec.noise_stddev, t.shape)
    keep = np.isfinite(t) & keep_draw
    ranges = (t + noise_draw if noise else t)[keep]
    pts = ray_grid(spec)[keep] * ranges[:, None]
    intensity = np.exp(-spec.atmosphere_attenuation_rate * t[keep])
    return Sweep(pts.astype(np.float32), intensity.astype(np.float32), surface[keep])


def _ray_blocks(boxes: Boxes, origin, R, spec: LidarSpec):
    """Yield (box index, channel slice, azimuth columns) of the rays that may hit each box in range.

    Uses the box's bounding sphere seen from the sensor: azimuth within asin(r / rho) of the centre's azimuth
    (rho = horizontal distance), elevation within asin(r / dist) of the centre's elevation.
    """
    n_az, step_el = spec.azimuth_steps, (spec.upper_fov - spec.lower_fov) / (spec.channels - 1)
    rel = (boxes.center - origin) @ R  # centres in the LiDAR frame
    radius = np.linalg.norm(boxes.half, axis=1)
    dist = np.linalg.norm(rel, axis=1)
    rho = np.hypot(rel[:, 0], rel[:, 1])
    for i in np.flatnonzero(dist - radius <= spec.range):
        if dist[i] <= radius[i]:
            el_lo, el_hi = -90.0, 90.0
        else:
            el_c, el_half = np.degrees(np.arctan2(rel[i, 2], rho[i])), np.degrees(np.arcsin(radius[i] / dist[i]))
            el_lo, el_hi = el_c - el_half, el_c + el_half
        c0 = max(0, int(np.floor((spec.upper_fov - el_hi) / step_el)))
        c1 = min(spec.channels - 1, int(np.ceil((spec.upper_fov - el_lo) / step_el)))
        if c0 > c1:
            continue
        if rho[i] <= radius[i]:
            cols = np.arange(n_az)
        else:
            az_c = np.degrees(np.arctan2(rel[i, 1], rel[i, 0]))
            az_half = np.degrees(np.arcsin(radius[i] / rho[i]))
            j0 = int(np.floor((az_c - az_half) * n_az / 360.0))
            j1 = int(np.ceil((az_c + az_half) * n_az / 360.0))
            cols = np.mod(np.arange(j0, j1 + 1), n_az)
        yield i, slice(c0, c1 + 1), cols
