"""Camera rendering: a z-buffered ray cast of the ground and the boxes, then shading.

``K`` is ours (pixel centres at integers, :func:`coopmap.geometry.opv2v_intrinsics`: principal point
((W - 1)/2, (H - 1)/2)), so the optical axis passes through the image's geometric centre, as in CARLA.
Pixel (u, v) looks along ``K^-1 [u, v, 1]`` in OpenCV axes, i.e. along
``d = R(cords) P K^-1 [u, v, 1]`` in the CARLA world (``P`` = OpenCV -> UE axes). Its optical-axis component
is 1, so the ray parameter of a hit is the z-depth. Only pixels inside each box's clipped screen rectangle are
tested against that box; boxes are visited front to back and skip pixels a nearer surface already covers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coopmap.geometry import P_UE_FROM_CV, carla_to_matrix
from coopmap.synth.boxes import GROUND_ID, SKY_ID, Boxes
from coopmap.synth.raycast import ground_hits, ray_box_entry
from coopmap.synth.scene import Scene
from coopmap.synth.textures import shade

Z_NEAR = 0.01


@dataclass(frozen=True)
class CameraHits:
    """What each pixel of one camera sees.

    Attributes:
        depth: (H, W) float64 z-depth in metres, 0 where the ray hits nothing (sky).
        surface: (H, W) int64 box index into the rendered Boxes, ``GROUND_ID`` or ``SKY_ID``.
        face: (H, W) int8 entry face of the box (see :func:`ray_box_entry`), 0 elsewhere.
        origin: (3,) camera centre, world.
        dirs: (H, W, 3) world ray direction of every pixel, ``M @ [u, v, 1]`` (see :func:`camera_rays`).
    """

    depth: np.ndarray
    surface: np.ndarray
    face: np.ndarray
    origin: np.ndarray
    dirs: np.ndarray


def pixel_directions(M, height: int, width: int) -> np.ndarray:
    """(H, W, 3) world ray direction ``M @ [u, v, 1]`` of every pixel (unit optical-axis component)."""
    u = np.arange(width, dtype=np.float64)
    v = np.arange(height, dtype=np.float64)[:, None]
    dirs = np.empty((height, width, 3))
    for k in range(3):
        dirs[..., k] = (M[k, 0] * u + M[k, 2]) + M[k, 1] * v
    return dirs


def camera_rays(cords, K) -> tuple[np.ndarray, np.ndarray]:
    """A camera's centre (3,) and pixel -> world-direction matrix M (3, 3) from its ``cords`` and K."""
    T = carla_to_matrix(cords)
    M = T[:3, :3] @ P_UE_FROM_CV[:3, :3] @ np.linalg.inv(K)
    return T[:3, 3].copy(), M


def cast_camera(scene: Scene, boxes: Boxes, cords, K, width: int, height: int) -> CameraHits:
    """Z-buffered ray cast of one camera (``boxes`` must not contain the camera's own vehicle)."""
    origin, M = camera_rays(cords, K)
    hits = CameraHits(np.zeros((height, width)), np.full((height, width), SKY_ID, np.int64),
                      np.zeros((height, width), np.int8), origin, pixel_directions(M, height, width))
    zbuf = ground_hits(origin, hits.dirs, scene.frame)
    hits.surface[np.isfinite(zbuf)] = GROUND_ID
    rects, zmin = _screen_rects(boxes, origin, M, width, height)
    u_all = np.arange(width, dtype=np.float64)
    v_all = np.arange(height, dtype=np.float64)
    for i in np.argsort(zmin, kind="stable"):
        if rects[i, 0] < 0:
            continue
        u0, u1, v0, v1 = _unoccluded(zbuf, rects[i], zmin[i])
        if u0 > u1:
            continue
        R = boxes.rot[i]
        A = R.T @ M
        o_box = R.T @ (origin - boxes.center[i])
        dirs = [(A[k, 0] * u_all[u0:u1 + 1] + A[k, 2])[None, :] + (A[k, 1] * v_all[v0:v1 + 1])[:, None]
                for k in range(3)]
        t, face = ray_box_entry(o_box, dirs, boxes.half[i])
        zb = zbuf[v0:v1 + 1, u0:u1 + 1]
        closer = t < zb
        zb[closer] = t[closer]
        hits.surface[v0:v1 + 1, u0:u1 + 1][closer] = i
        hits.face[v0:v1 + 1, u0:u1 + 1][closer] = face[closer]
    hits.depth[:] = np.where(np.isfinite(zbuf), zbuf, 0.0)
    return hits


def render_camera(scene: Scene, boxes: Boxes, cords, K, width: int, height: int):
    """Render one camera: ((H, W, 3) uint8 RGB image, :class:`CameraHits`)."""
    hits = cast_camera(scene, boxes, cords, K, width, height)
    rgb = shade(scene, boxes, hits.origin, hits.dirs.reshape(-1, 3), hits.depth.ravel(),
                hits.surface.ravel(), hits.face.ravel())
    return rgb.reshape(height, width, 3), hits


def _screen_rects(boxes: Boxes, origin, M, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rectangles [u0, u1, v0, v1] (inclusive; u0 = -1 when off screen) and nearest z-depth per box.

    The box is clipped by the plane z = Z_NEAR (its corners in front plus its edges' crossings of that plane),
    then projected; a perspective projection maps the clipped convex box into the hull of those points.
    """
    n = len(boxes)
    rects = np.full((n, 4), -1, dtype=np.int64)
    if n == 0:
        return rects, np.zeros(0)
    Minv = np.linalg.inv(M)  # world direction -> (u, v, 1) * z
    q = (boxes.corners() - origin) @ Minv.T  # (N, 8, 3) = z * (u, v, 1)
    edges = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1])
    qa, qb = q[:, edges[:, 0]], q[:, edges[:, 1]]
    za, zb = qa[..., 2], qb[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (Z_NEAR - za) / (zb - za)
        crossing = ((za < Z_NEAR) != (zb < Z_NEAR))[..., None]
        clipped = np.where(crossing, qa + s[..., None] * (qb - qa), np.nan)
        pts = np.concatenate([np.where((q[..., 2] >= Z_NEAR)[..., None], q, np.nan), clipped], axis=1)
        uv = pts[..., :2] / pts[..., 2:3]  # NaN for dropped points
    ok = np.isfinite(uv[..., 0]).any(-1)
    lo = np.where(np.isnan(uv), np.inf, uv).min(1)
    hi = np.where(np.isnan(uv), -np.inf, uv).max(1)
    on = ok & (hi[:, 0] >= 0) & (lo[:, 0] <= width - 1) & (hi[:, 1] >= 0) & (lo[:, 1] <= height - 1)
    limit = np.array([width - 1, height - 1])
    first = np.clip(np.floor(lo[on]), 0, limit).astype(np.int64)
    last = np.clip(np.ceil(hi[on]), 0, limit).astype(np.int64)
    rects[on] = np.stack([first[:, 0], last[:, 0], first[:, 1], last[:, 1]], -1)
    zmin = np.where(ok, np.maximum(q[..., 2].min(1), Z_NEAR), np.inf)
    return rects, zmin


def _unoccluded(zbuf: np.ndarray, rect, zmin: float) -> tuple[int, int, int, int]:
    """Shrink ``rect`` to the rows and columns where some pixel is farther than ``zmin`` (u0 > u1 if none)."""
    u0, u1, v0, v1 = (int(r) for r in rect)
    open_ = zbuf[v0:v1 + 1, u0:u1 + 1] > zmin
    rows = np.flatnonzero(open_.any(1))
    if rows.size == 0:
        return 1, 0, 0, 0
    cols = np.flatnonzero(open_.any(0))
    return u0 + int(cols[0]), u0 + int(cols[-1]), v0 + int(rows[0]), v0 + int(rows[-1])
