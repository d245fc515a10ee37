"""Vehicles of a synthetic scenario: the CAV convoy, moving traffic, and cars stopped or parked on cross roads.

Every vehicle moves straight at constant speed along its lane (map frame, see :mod:`coopmap.synth.scene`); all
vehicles heading the same way share one speed, so gaps never close and nobody collides. The CAVs drive one
behind the other in the inner +x lane, 10-14 m apart (within ~70 m of each other for up to 7 CAVs); other
traffic keeps >= 14 m from the convoy in the +x lanes so no roof rises into the top of a camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coopmap.geometry import carla_to_matrix
from coopmap.synth.boxes import VEHICLE, Boxes, make_boxes
from coopmap.synth.scene import CROSS_LANE_X, LANE_Y, PARKING_X, MapFrame

#: OPV2V-like CARLA vehicle half extents (length, width, height), metres: sedans, coupes, SUVs, vans.
CAR_HALF_EXTENTS = np.array([
    [2.40, 1.08, 0.75], [2.45, 1.06, 0.76], [2.36, 0.95, 0.65], [1.85, 0.90, 0.78], [2.20, 0.95, 0.72],
    [2.30, 0.96, 0.93], [1.93, 0.95, 0.94], [2.60, 1.10, 1.02],
])
N_SEDANS = 5  # the first rows; CAVs are sedans (roof below their own LiDAR)
CAR_COLORS = np.array([
    [0.92, 0.92, 0.92], [0.08, 0.08, 0.09], [0.62, 0.64, 0.66], [0.70, 0.10, 0.08], [0.12, 0.22, 0.55],
    [0.35, 0.36, 0.38], [0.80, 0.70, 0.45], [0.15, 0.40, 0.25],
])


@dataclass(frozen=True)
class Traffic:
    """N vehicles; the first ``n_cavs`` are the CAVs (convoy order, leader first).

    Attributes:
        actor_id: (N,) int64 unique CARLA-like actor ids.
        start: (N, 3) map-frame vehicle origin at time 0 (on the ground).
        heading: (N,) map-frame yaw, degrees.
        speed: (N,) m/s.
        half: (N, 3) half extents; color: (N, 3).
        tilt: (N, 2) small [roll, pitch] in degrees (suspension), 0 for non-CAVs.
    """

    actor_id: np.ndarray
    start: np.ndarray
    heading: np.ndarray
    speed: np.ndarray
    half: np.ndarray
    color: np.ndarray
    tilt: np.ndarray
    n_cavs: int

    def __len__(self) -> int:
        return int(self.actor_id.shape[0])

    def poses(self, frame: MapFrame, t: float) -> np.ndarray:
        """(N, 6) CARLA world poses ``[x, y, z, roll, yaw, pitch]`` of the vehicle origins at time ``t`` (s)."""
        h = np.radians(self.heading)
        pos = self.start + (self.speed * t)[:, None] * np.stack([np.cos(h), np.sin(h), np.zeros_like(h)], -1)
        world = frame.to_world(pos)
        yaw = np.mod(self.heading + frame.yaw + 180.0, 360.0) - 180.0
        return np.concatenate([world, np.stack([self.tilt[:, 0], yaw, self.tilt[:, 1]], -1)], -1)

    def boxes(self, poses: np.ndarray) -> Boxes:
        """The vehicles' boxes for the given poses: centred ``half_z`` above the origin, in the vehicle frame."""
        T = carla_to_matrix(poses)
        centre = T[:, :3, 3] + T[:, :3, 2] * self.half[:, 2:3]
        return make_boxes(centre, T[:, :3, :3], self.half, VEHICLE, self.color, self.actor_id)


def plan_convoy(rng: np.random.Generator, n_cavs: int) -> tuple[np.ndarray, float]:
    """Map-frame x of each CAV at time 0 (leader at 0, then behind it) and the convoy speed (m/s)."""
    max_gap = 14.0 if n_cavs <= 2 else min(14.0, 66.0 / (n_cavs - 1))
    gaps = rng.uniform(10.0, max(10.0, max_gap), n_cavs - 1)
    return -np.concatenate([[0.0], np.cumsum(gaps)]), float(rng.uniform(20.0, 45.0) / 3.6)


def build_traffic(rng, convoy_x, speed, duration: float, cross_x) -> Traffic:
    """The CAVs plus main-road traffic, cross-road queues and parked cars (all map frame)."""
    back_speed = float(rng.uniform(20.0, 50.0) / 3.6)
    lo, hi = convoy_x.min() - 160.0, convoy_x.max() + speed * duration + 160.0
    keep_out = (convoy_x.min() - 14.0, convoy_x.max() + 14.0)
    # (x, y, heading, speed, is_cav, sedan_only): CAVs and the opposing inner lane (passing 5.5 m from the
    # CAVs) are low cars, so no roof near a camera rises above the LiDAR's reach into the image top.
    rows = [(x, LANE_Y[0], 0.0, speed, True, True) for x in convoy_x]
    rows += [(x, LANE_Y[0], 0.0, speed, False, False) for x in _lane(rng, lo, hi, 14.0, 40.0, keep_out)]
    rows += [(x, LANE_Y[1], 0.0, speed, False, False) for x in _lane(rng, lo, hi, 14.0, 40.0, keep_out)]
    back_hi = hi + back_speed * duration
    for y in LANE_Y:
        rows += [(x, -y, 180.0, back_speed, False, y == LANE_Y[0])
                 for x in _lane(rng, lo, back_hi, 10.0, 40.0, None)]
    for xc in cross_x[(cross_x > lo) & (cross_x < hi)]:
        rows += _cross_road_cars(rng, xc)
    n = len(rows)
    arr = np.array([r[:4] for r in rows], dtype=np.float64)
    is_cav = np.array([r[4] for r in rows])
    sedan = np.array([r[5] for r in rows])
    kinds = np.where(sedan, rng.integers(0, N_SEDANS, n), rng.integers(0, len(CAR_HALF_EXTENTS), n))
    colors = CAR_COLORS[rng.integers(0, len(CAR_COLORS), n)] * rng.uniform(0.9, 1.05, (n, 1))
    tilt = np.where(is_cav[:, None], rng.uniform(-0.15, 0.15, (n, 2)), 0.0)
    ids = rng.choice(np.arange(200, 9000), size=n, replace=False).astype(np.int64)
    start = np.stack([arr[:, 0], arr[:, 1], np.zeros(n)], -1)
    return Traffic(ids, start, arr[:, 2], arr[:, 3], CAR_HALF_EXTENTS[kinds], np.clip(colors, 0, 1), tilt,
                   int(is_cav.sum()))


def _lane(rng, lo: float, hi: float, gap_min: float, gap_max: float, keep_out) -> list[float]:
    """Positions along a lane with random gaps, skipping the ``keep_out`` interval."""
    xs, x = [], lo + rng.uniform(0.0, gap_max)
    while x < hi:
        if keep_out is None or not keep_out[0] <= x <= keep_out[1]:
            xs.append(float(x))
        x += rng.uniform(gap_min, gap_max)
    return xs


def _cross_road_cars(rng, xc: float) -> list[tuple]:
    """Cars waiting at the main road (a short queue per approach) and cars parked along the kerbs."""
    rows = []
    for side in (1.0, -1.0):  # side +1: the approach from y > 0, heading -y, driving at x = xc + 2
        heading = -90.0 * side
        for i in range(int(rng.integers(0, 3))):
            rows.append((xc + side * CROSS_LANE_X, side * (18.0 + 7.0 * i), heading, 0.0, False, False))
        y = 20.0 + rng.uniform(0.0, 6.0)
        while y < 90.0:
            if rng.random() < 0.6:
                rows.append((xc + side * PARKING_X, side * y, heading, 0.0, False, False))
            y += rng.uniform(6.0, 9.0)
    return rows


def vehicle_entry(pose, half, speed_mps: float) -> dict:
    """A yaml ``vehicles`` entry: location, center (box offset, vehicle frame), half extent, angle, km/h."""
    return {
        "angle": [float(pose[3]), float(pose[4]), float(pose[5])],
        "center": [0.0, 0.0, float(half[2])],
        "extent": [float(h) for h in half],
        "location": [float(p) for p in pose[:3]],
        "speed": float(speed_mps * 3.6),
    }
