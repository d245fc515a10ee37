"""Procedural textures and simple shading (Lambert + ambient + distance haze), so images have features.

Textures are functions of surface coordinates (map-frame ground coordinates, box-face coordinates) built from a
fixed random lattice (value noise): the same scene always gives the same pixels. Colours are float32.
"""

from __future__ import annotations

import numpy as np

from coopmap.synth.boxes import BUILDING, CANOPY, GROUND_ID, POLE, SKY_ID, TRUNK, VEHICLE, Boxes
from coopmap.synth.scene import CROSS_HALF, CROSS_SIDEWALK, MEDIAN_HALF, ROAD_HALF, SIDEWALK_OUTER, Scene

F32 = np.float32
SKY_HORIZON = np.array([0.80, 0.86, 0.93], F32)
SKY_ZENITH = np.array([0.33, 0.52, 0.82], F32)
HAZE_DISTANCE = 700.0
#: Ground tints: asphalt, sidewalk, lot, white paint, yellow paint (multiplied by a per-pixel brightness).
GROUND_TINTS = np.array(
    [[1.0, 1.0, 1.04], [1.0, 0.98, 0.94], [0.95, 1.0, 0.55], [1.0, 1.0, 0.98], [1.0, 0.82, 0.24]], F32
)
GLASS = np.array([0.16, 0.20, 0.27], F32)
WARM = np.array([0.45, 0.40, 0.20], F32)
CAR_PARTS = np.array([[0.10, 0.13, 0.17], [0.06, 0.06, 0.06], [0.95, 0.93, 0.80], [0.75, 0.08, 0.06]], F32)

#: Random lattice values shared by all noise (257 x 257 so that the +1 neighbours need no wrap-around).
_LATTICE = np.random.default_rng(0x5EED).random((257, 257)).astype(F32).ravel()


def lattice(ix, iy) -> np.ndarray:
    """Pseudo-random value in [0, 1) at integer lattice points (period 256 in each coordinate)."""
    return _LATTICE[(np.asarray(iy).astype(np.int64) & 255) * 257 + (np.asarray(ix).astype(np.int64) & 255)]


def value_noise(x, y, cell: float, seed: int) -> np.ndarray:
    """Smooth value noise in [0, 1) with lattice spacing ``cell`` (metres); ``seed`` shifts the pattern."""
    xs = np.asarray(x, F32) * F32(1.0 / cell) + F32((seed % 251) * 1.37)
    ys = np.asarray(y, F32) * F32(1.0 / cell) + F32((seed % 241) * 2.11)
    fx, fy = np.floor(xs), np.floor(ys)
    idx = (fy.astype(np.int64) & 255) * 257 + (fx.astype(np.int64) & 255)
    fx, fy = xs - fx, ys - fy
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    a, b, c, d = _LATTICE[idx], _LATTICE[idx + 1], _LATTICE[idx + 257], _LATTICE[idx + 258]
    top = a + (b - a) * fx
    return top + (c + (d - c) * fx - top) * fy


def fbm(x, y, cell: float, seed: int) -> np.ndarray:
    """Two octaves of value noise, in [0, 1)."""
    return (2 * value_noise(x, y, cell, seed) + value_noise(x, y, cell / 3.1, seed + 1)) / 3


def shade(scene: Scene, boxes: Boxes, origin, dirs, depth, surface, face) -> np.ndarray:
    """Colour the pixels of a cast camera.

    Args:
        origin: (3,) camera centre; dirs: (N, 3) world ray directions (the hit is ``origin + depth * dir``).
        depth: (N,) z-depth (0 = sky); surface: (N,) box index / GROUND_ID / SKY_ID; face: (N,) int8.
    Returns:
        (N, 3) uint8 RGB.
    """
    rgb = np.empty((depth.shape[0], 3), F32)
    ray_len = np.sqrt(np.einsum("ij,ij->i", dirs, dirs))
    sky = np.flatnonzero(surface == SKY_ID)
    w = np.sqrt(np.clip(dirs[sky, 2] / ray_len[sky], 0.0, 1.0)).astype(F32)[:, None]
    rgb[sky] = SKY_HORIZON + (SKY_ZENITH - SKY_HORIZON) * w
    for sel, colour in ((np.flatnonzero(surface == GROUND_ID), _ground_pixels),
                        (np.flatnonzero(surface >= 0), _box_pixels)):
        if sel.size:
            t = depth[sel]
            pts = origin + t[:, None] * dirs[sel]
            haze = (1.0 - np.exp(-t * ray_len[sel] / HAZE_DISTANCE)).astype(F32)[:, None]
            rgb[sel] = colour(scene, boxes, pts, surface[sel], face[sel]) * (1 - haze) + SKY_HORIZON * haze
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def _ground_pixels(scene: Scene, boxes: Boxes, pts, surface, face) -> np.ndarray:
    return ground_color(scene, pts) * F32(0.55 + 0.45 * max(scene.sun[2], 0.0))


def ground_color(scene: Scene, pts_world) -> np.ndarray:
    """(S, 3) world points on the ground -> (S, 3) float32 colours: roads with markings, sidewalks, lots."""
    x, y = scene.frame.to_map_xy(pts_world[:, 0], pts_world[:, 1])
    ay = np.abs(y)
    seed = scene.texture_seed
    dx = _cross_offset(x, scene.cross_x)  # signed offset from the nearest cross-road axis
    adx = np.abs(dx)
    in_cross = adx < CROSS_HALF
    road = (ay < ROAD_HALF) | in_cross
    walk = ~road & ((ay < SIDEWALK_OUTER) | (adx < CROSS_HALF + CROSS_SIDEWALK))
    n = fbm(x, y, 1.3, seed)
    fine = value_noise(x, y, 0.11, seed + 7)
    tiles = (np.modf(np.abs(x))[0] < 0.05) | (np.modf(ay)[0] < 0.05)
    kind = np.where(road, 0, np.where(walk, 1, 2))
    lum = np.where(road, 0.24 + 0.10 * n + 0.05 * fine,
                   np.where(walk, 0.58 + 0.08 * n - 0.12 * tiles + 0.04 * fine, 0.25 + 0.30 * n + 0.06 * fine))
    main = (ay < ROAD_HALF) & ~in_cross
    white, yellow = _main_markings(x, ay, main, dx)
    white |= in_cross & (ay >= ROAD_HALF) & _cross_markings(dx, ay)
    kind[white], kind[yellow] = 3, 4
    paint = white | yellow
    lum[paint] = 0.86 - 0.05 * fine[paint]
    return GROUND_TINTS[kind] * lum.astype(F32)[:, None]


def _cross_offset(x, cross_x) -> np.ndarray:
    """Signed offset of map-frame x from the nearest cross-road axis (inf without cross roads)."""
    padded = np.concatenate([[-np.inf], np.asarray(cross_x, dtype=np.float64), [np.inf]])
    i = np.searchsorted(padded, x)
    left, right = x - padded[i - 1], x - padded[i]
    return np.where(left < -right, left, right)


def _main_markings(x, ay, main, dx) -> tuple[np.ndarray, np.ndarray]:
    """White (lane dividers, edges, zebra crossings) and yellow (median) paint of the main road."""
    yellow = main & (np.abs(ay - (MEDIAN_HALF - 0.1)) < 0.08)
    dashed = (np.abs(ay - 4.5) < 0.08) & (np.mod(x, 9.0) < 3.0)
    edge = np.abs(ay - (ROAD_HALF - 0.35)) < 0.08
    zebra = (np.abs(np.abs(dx) - (CROSS_HALF + 2.5)) < 1.5) & (np.mod(ay, 1.2) < 0.6)
    return main & (dashed | edge | zebra), yellow


def _cross_markings(dx, ay) -> np.ndarray:
    centre = (np.abs(dx) < 0.08) & (np.mod(ay, 8.0) < 4.0)
    zebra = (np.abs(ay - (ROAD_HALF + 3.5)) < 2.0) & (np.mod(dx, 1.2) < 0.6)
    return centre | zebra


def face_light(boxes: Boxes, sun) -> np.ndarray:
    """(N, 6) Lambert + ambient factor of every box face (face code ``2 * axis + (outward normal is +axis)``)."""
    cos = np.einsum("nij,i->nj", boxes.rot, sun)  # sun . box axis j
    signed = np.stack([-cos, cos], -1).reshape(len(boxes), 6)
    return (0.5 + 0.5 * np.clip(signed, 0.0, 1.0)).astype(F32)


def _box_pixels(scene: Scene, boxes: Boxes, pts, idx, face) -> np.ndarray:
    """(S, 3) colours of box surface points (world ``pts`` on box ``idx`` through entry ``face``)."""
    local = np.einsum("sji,sj->si", boxes.rot[idx], pts - boxes.center[idx])  # R^T (p - c)
    half = boxes.half[idx]
    axis = face // 2
    # face coordinates: (along the face, height above the box bottom) on walls, (x, y) on tops and bottoms
    a = np.where(axis == 0, local[:, 1] + half[:, 1], local[:, 0] + half[:, 0])
    b = np.where(axis == 2, local[:, 1] + half[:, 1], local[:, 2] + half[:, 2])
    mat = boxes.material[idx]
    seed = scene.texture_seed
    lum = (0.85 + 0.3 * fbm(a + 13.1 * idx, b, 0.9, seed + 11)) * face_light(boxes, scene.sun)[idx, face]
    for m, cell, gain, k in ((CANOPY, 0.25, 0.9, 5), (TRUNK, 0.3, 0.5, 9)):
        sel = np.flatnonzero(mat == m)
        lum[sel] *= 1 - gain / 2 + gain * value_noise(a[sel] * (1 + 7 * (m == TRUNK)) + 7 * idx[sel], b[sel], cell,
                                                      seed + k)
    lum[(mat == POLE) & (np.mod(b, 1.0) < 0.5)] *= 0.85
    lum[(mat == BUILDING) & (axis == 2)] *= 0.5  # roofs
    rgb = boxes.color[idx].astype(F32) * lum[:, None]
    win = np.flatnonzero((mat == BUILDING) & _windows(a, b, axis, half))
    lit = lattice(np.floor(a[win] / 3.0) + 37 * idx[win], np.floor(b[win] / 3.3) + 11 * idx[win] + seed)
    rgb[win] = GLASS + WARM * (lit > 0.85)[:, None] + (0.12 * lit)[:, None]
    car = np.flatnonzero(mat == VEHICLE)
    part = _car_parts(local[car], half[car], axis[car])
    rgb[car[part >= 0]] = CAR_PARTS[part[part >= 0]] * (0.6 + 0.4 * lum[car[part >= 0], None])
    return rgb


def _windows(a, b, axis, half) -> np.ndarray:
    """A grid of windows on walls: 3 m bays, 3.3 m floors, none in the top 0.8 m."""
    fa, fb = np.mod(a, 3.0), np.mod(b, 3.3)
    return (axis != 2) & (fa > 0.6) & (fa < 2.4) & (fb > 0.9) & (fb < 2.6) & (b < 2 * half[:, 2] - 0.8)


def _car_parts(local, half, axis) -> np.ndarray:
    """Per car pixel: 0 windows, 1 tyres, 2 head lights, 3 tail lights, -1 body paint."""
    zr = local[:, 2] / half[:, 2]
    side = np.abs(local[:, 1]) / half[:, 1]
    part = np.full(zr.shape, -1, np.int64)
    part[(axis != 2) & (zr > 0.25) & (zr < 0.8)] = 0
    part[(axis != 2) & (zr < -0.55)] = 1
    part[(axis == 0) & (local[:, 0] > 0) & (zr > -0.3) & (zr < 0.05) & (side > 0.5)] = 2
    part[(axis == 0) & (local[:, 0] < 0) & (zr > -0.2) & (zr < 0.1) & (side > 0.55)] = 3
    return part
