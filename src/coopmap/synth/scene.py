"""The static world of a synthetic scenario: roads, sidewalks, buildings, poles and trees.

The layout is drawn in a level **map frame** (x along the main road, y to its right, z up; left-handed like CARLA)
and placed in the CARLA world by a random yaw and offset, as CARLA towns have arbitrary coordinates.

Main road (map frame, metres): a painted median |y| < 1, two lanes per direction (right-hand traffic: heading +x
at y = +2.75 / +6.25, heading -x at y = -2.75 / -6.25), kerbs at |y| = 8, sidewalks to |y| = 15 with lamp posts
and trees at |y| = 13.5, buildings from |y| >= 16. Cross roads (half width 7) run along y at ``cross_x``.
Street furniture and buildings keep >= 9.5 m from the CAV lane (y = 2.75), so LiDAR returns stay below the upper
~40 % of the cameras (the +2 deg top laser reaches 1.9 + 0.035 r metres).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coopmap.synth.boxes import BUILDING, CANOPY, POLE, TRUNK, Boxes, make_boxes
from coopmap.synth.poses import yaw_matrix

MEDIAN_HALF = 1.0
LANE_Y = (2.75, 6.25)  # lane centres of the +x direction; the -x direction mirrors them
ROAD_HALF = 8.0
SIDEWALK_OUTER = 15.0
FURNITURE_Y = 13.5
BUILDING_FRONT = 16.0
CROSS_HALF = 7.0
CROSS_LANE_X = 2.0  # cross-road lane centre offset from its axis
PARKING_X = 5.5  # cross-road parking strip centre offset from its axis
CROSS_SIDEWALK = 4.0
GROUND_MARGIN = 1000.0  # the ground extends this far (map x and y) beyond the traffic's stretch; then sky

_FACADES = np.array(
    [[0.72, 0.66, 0.58], [0.62, 0.60, 0.58], [0.55, 0.40, 0.33], [0.80, 0.76, 0.68], [0.45, 0.50, 0.55],
     [0.70, 0.55, 0.45], [0.58, 0.62, 0.66], [0.85, 0.82, 0.75]]
)


@dataclass(frozen=True)
class MapFrame:
    """Placement of the level map frame in the CARLA world: ``p_world = Rz(yaw) p_map + origin``.

    The ground is the square ``|x|, |y| <= ground_half`` of the map frame; beyond it there is only sky.
    """

    yaw: float
    origin: np.ndarray  # (3,) with z = 0
    ground_half: float = GROUND_MARGIN

    @property
    def rot(self) -> np.ndarray:
        return yaw_matrix(self.yaw)

    def to_world(self, pts_map) -> np.ndarray:
        """(*B, 3) map-frame points -> (*B, 3) world points."""
        return np.asarray(pts_map, dtype=np.float64) @ self.rot.T + self.origin

    def to_map_xy(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """World x, y (any shape) -> map-frame x, y (the map frame is level: z is unchanged)."""
        c, s = np.cos(np.radians(self.yaw)), np.sin(np.radians(self.yaw))
        dx, dy = x - self.origin[0], y - self.origin[1]
        return c * dx + s * dy, c * dy - s * dx

    def to_map(self, pts_world) -> np.ndarray:
        """(*B, 3) world points -> (*B, 3) map-frame points."""
        p = np.asarray(pts_world, dtype=np.float64)
        x, y = self.to_map_xy(p[..., 0], p[..., 1])
        return np.stack([x, y, p[..., 2] - self.origin[2]], -1)


@dataclass(frozen=True)
class Scene:
    """A scenario's static world.

    Attributes:
        frame: where the map frame sits in the world.
        cross_x: (K,) map-frame x of the cross roads' axes.
        static: buildings, poles, trunks and canopies (world).
        sun: (3,) unit vector towards the sun, world.
        texture_seed: seed of the procedural textures.
    """

    frame: MapFrame
    cross_x: np.ndarray
    static: Boxes
    sun: np.ndarray
    texture_seed: int


def build_scene(rng: np.random.Generator, x_min: float, x_max: float) -> Scene:
    """Draw the static world around the main-road stretch [x_min, x_max] (map frame) that the traffic uses."""
    frame = MapFrame(float(rng.uniform(-180.0, 180.0)), np.append(rng.uniform(-400.0, 400.0, 2), 0.0),
                     GROUND_MARGIN + max(abs(x_min), abs(x_max)))
    lo, hi = x_min - 220.0, x_max + 220.0
    cross_x = _cross_roads(rng, lo, hi)
    local = Boxes.concat(_buildings(rng, lo, hi, cross_x), _furniture(rng, lo, hi, cross_x))
    static = _to_world(local, frame)
    az, el = np.radians(rng.uniform(0.0, 360.0)), np.radians(rng.uniform(30.0, 60.0))
    sun = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    return Scene(frame, cross_x, static, sun, int(rng.integers(0, 2**31 - 1)))


def _to_world(local: Boxes, frame: MapFrame) -> Boxes:
    R = frame.rot
    return Boxes(frame.to_world(local.center), R @ local.rot, local.half, local.material, local.color,
                 local.actor_id)


def _cross_roads(rng, lo: float, hi: float) -> np.ndarray:
    xs, x = [], lo + rng.uniform(20.0, 80.0)
    while x < hi:
        xs.append(x)
        x += rng.uniform(80.0, 130.0)
    return np.array(xs)


def _free_intervals(lo: float, hi: float, cross_x: np.ndarray, margin: float) -> list[tuple[float, float]]:
    """Pieces of [lo, hi] at least ``margin`` away from every cross-road axis."""
    edges = [lo] + [v for c in cross_x for v in (c - margin, c + margin)] + [hi]
    return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a > 1.0]


def _buildings(rng, lo: float, hi: float, cross_x: np.ndarray) -> Boxes:
    """Two rows of buildings on each side of the main road, plus a sparse tall skyline behind."""
    rows = []
    for side in (1.0, -1.0):
        for a, b in _free_intervals(lo, hi, cross_x, CROSS_HALF + CROSS_SIDEWALK + 2.0):
            front = BUILDING_FRONT
            for row in range(3):
                depth_range, height_range = [((8, 18), (3, 30)), ((10, 20), (8, 45)), ((15, 30), (25, 80))][row]
                rows.append(_building_row(rng, a, b, side, front, depth_range, height_range, sparse=row == 2))
                front += depth_range[1] + rng.uniform(3.0, 8.0)
    return Boxes.concat(*rows)


def _building_row(rng, a, b, side, front, depth_range, height_range, sparse) -> Boxes:
    centers, halves, colors = [], [], []
    x = a + rng.uniform(0.0, 3.0)
    while x < b - 6.0:
        width = min(rng.uniform(8.0, 25.0), b - x)
        if not sparse or rng.random() < 0.4:
            depth = rng.uniform(*depth_range)
            height = rng.uniform(*height_range) if rng.random() < 0.75 else rng.uniform(3.0, 6.0)
            y0 = front + rng.uniform(0.0, 2.5)
            centers.append([x + width / 2, side * (y0 + depth / 2), height / 2])
            halves.append([width / 2, depth / 2, height / 2])
            colors.append(_FACADES[rng.integers(len(_FACADES))] * rng.uniform(0.85, 1.1))
        x += width + (rng.uniform(1.0, 6.0) if rng.random() < 0.35 else 0.3)
    if not centers:
        return Boxes.empty()
    return make_boxes(centers, np.eye(3), halves, BUILDING, np.clip(colors, 0, 1))


def _furniture(rng, lo: float, hi: float, cross_x: np.ndarray) -> Boxes:
    """Lamp posts and trees along both sidewalks (trunk and canopy are separate boxes)."""
    poles, trunks, canopies = [], [], []
    for side in (1.0, -1.0):
        for a, b in _free_intervals(lo, hi, cross_x, CROSS_HALF + 2.5):
            x = a + rng.uniform(2.0, 8.0)
            while x < b - 2.0:
                y = side * FURNITURE_Y
                if rng.random() < 0.45:
                    poles.append([x, y, 3.6])
                else:
                    trunk_h = rng.uniform(2.5, 3.5)
                    trunks.append([x, y, trunk_h / 2, trunk_h])
                    canopies.append([x, y, trunk_h + 1.6, rng.uniform(0.9, 1.2)])
                x += rng.uniform(9.0, 16.0)
    parts = []
    if poles:
        parts.append(make_boxes(poles, np.eye(3), [0.12, 0.12, 3.6], POLE, [0.55, 0.56, 0.58]))
    if trunks:
        t = np.array(trunks)
        half = np.stack([np.full(len(t), 0.18), np.full(len(t), 0.18), t[:, 3] / 2], -1)
        parts.append(make_boxes(t[:, :3], np.eye(3), half, TRUNK, [0.42, 0.30, 0.20]))
        c = np.array(canopies)
        half = np.stack([np.full(len(c), 1.2), np.full(len(c), 1.2), np.full(len(c), 1.6)], -1)
        colors = np.array([0.25, 0.45, 0.18]) * c[:, 3:4]
        parts.append(make_boxes(c[:, :3], np.eye(3), half, CANOPY, colors))
    return Boxes.concat(*parts)
