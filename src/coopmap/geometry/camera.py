"""Pinhole cameras: projection, unprojection, ray directions, intrinsics under resizing.

Conventions (MapAnything's): OpenCV camera axes (x right, y down, z forward); **pixel centres at integer
(u, v)**, so pixel (u, v) looks along ``K^-1 [u, v, 1]``; "depth" is z-depth along the optical axis unless named
``depth_along_ray``. Functions accept torch tensors or numpy arrays (same type out) and leading batch dims.

Intrinsics are checked at every entry (finite, focal lengths > 0; else :class:`~coopmap.errors.InvalidValueError`).
Points and depths are not: they work element-wise, so a non-finite point gives a non-finite result for that
point only (mask with ``isfinite``), as a point behind the camera (z <= 0) gives a meaningless pixel.

OPV2V's yaml K is CARLA's (principal point (W/2, H/2) in pixel-edge coordinates): every K read from a file goes
through :func:`intrinsics_from_carla` (cx - 0.5, cy - 0.5) before any function here sees it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from coopmap.errors import InvalidValueError, check_finite, check_shape


def _xp(x):
    return torch if isinstance(x, torch.Tensor) else np


def carla_intrinsics(width: int, height: int, fov_deg: float = 100.0) -> np.ndarray:
    """The camera matrix as CARLA / OpenCDA write it into OPV2V's yaml (``cameraK.intrinsic``).

    fx = fy = width / (2 tan(fov/2)), cx = width / 2, cy = height / 2: the principal point in **pixel-edge**
    coordinates (pixel i spans [i, i + 1)). Convert with :func:`intrinsics_from_carla` before projecting.
    Returns (3, 3) float64.
    """
    f = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def intrinsics_from_carla(K_carla):
    """CARLA's written K (pixel-edge principal point) -> coopmap's K (pixel centres at integer u, v).

    CARLA renders with the optical axis through the image's geometric centre, the pixel-edge coordinate
    (W/2, H/2) it writes as (cx, cy); pixel i's centre is edge coordinate i + 0.5, so in centre coordinates the
    principal point is (cx - 0.5, cy - 0.5) = ((W - 1)/2, (H - 1)/2). The one place this half pixel is applied
    (docs/conventions.md). (*B, 3, 3) numpy or torch -> same.
    """
    K = K_carla.clone() if isinstance(K_carla, torch.Tensor) else np.array(K_carla, dtype=np.float64, copy=True)
    K[..., 0, 2] = K[..., 0, 2] - 0.5
    K[..., 1, 2] = K[..., 1, 2] - 0.5
    return K


def intrinsics_to_carla(K):
    """Inverse of :func:`intrinsics_from_carla`: coopmap's K -> K as CARLA writes it (cx + 0.5, cy + 0.5)."""
    K2 = K.clone() if isinstance(K, torch.Tensor) else np.array(K, dtype=np.float64, copy=True)
    K2[..., 0, 2] = K2[..., 0, 2] + 0.5
    K2[..., 1, 2] = K2[..., 1, 2] + 0.5
    return K2


def opv2v_intrinsics(width: int, height: int, fov_deg: float = 100.0) -> np.ndarray:
    """Our K (pixel centres at integers) of a CARLA camera of ``width x height`` and horizontal FOV.

    fx = fy = width / (2 tan(fov/2)), cx = (width - 1) / 2, cy = (height - 1) / 2: the optical axis through the
    image's geometric centre (OPV2V: 800x600, 100 deg -> cx = 399.5). The yaml holds
    :func:`carla_intrinsics` (cx = 400). Returns (3, 3) float64.
    """
    return intrinsics_from_carla(carla_intrinsics(width, height, fov_deg))


def check_intrinsics(K) -> None:
    """Raise unless ``K`` (*B, 3, 3) is finite with positive focal lengths (ShapeError / InvalidValueError)."""
    check_shape("K", K, ("*", 3, 3))
    check_finite("K (camera intrinsics)", K)
    if not bool((K[..., 0, 0] > 0).all()) or not bool((K[..., 1, 1] > 0).all()):
        raise InvalidValueError("K (camera intrinsics): focal lengths fx, fy must be > 0")


def project(pts_cam, K):
    """Project camera-frame points to pixels.

    Args:
        pts_cam: (*B, N, 3) metres, OpenCV camera frame.
        K: (*B, 3, 3) intrinsics.
    Returns:
        uv: (*B, N, 2) continuous pixel coordinates (pixel centres at integers);
        z: (*B, N) depth along the optical axis. Points with z <= 0 get non-finite or meaningless uv: mask them.
    """
    check_shape("pts_cam", pts_cam, ("*", None, 3))
    check_intrinsics(K)
    xp = _xp(pts_cam)
    z = pts_cam[..., 2]
    x = pts_cam[..., 0] / z
    y = pts_cam[..., 1] / z
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy = K[..., 0, 2, None], K[..., 1, 2, None]
    uv = xp.stack([fx * x + cx, fy * y + cy], -1)
    return uv, z


def unproject(uv, depth, K):
    """Lift pixels with z-depth to camera-frame points: ``depth * K^-1 [u, v, 1]``.

    Args:
        uv: (*B, N, 2) pixel coordinates; depth: (*B, N) z-depth, metres; K: (*B, 3, 3).
    Returns:
        pts_cam: (*B, N, 3) metres, OpenCV camera frame.
    """
    check_shape("uv", uv, ("*", None, 2))
    check_intrinsics(K)
    xp = _xp(uv)
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy = K[..., 0, 2, None], K[..., 1, 2, None]
    x = (uv[..., 0] - cx) / fx
    y = (uv[..., 1] - cy) / fy
    return xp.stack([x * depth, y * depth, depth], -1)


def pixel_grid(height: int, width: int, like=None):
    """(H, W, 2) pixel-centre coordinates (u, v) = (column, row) as floats, numpy or like ``like``'s type."""
    if isinstance(like, torch.Tensor):
        v, u = torch.meshgrid(
            torch.arange(height, dtype=like.dtype, device=like.device),
            torch.arange(width, dtype=like.dtype, device=like.device),
            indexing="ij",
        )
        return torch.stack([u, v], -1)
    dtype = like.dtype if isinstance(like, np.ndarray) else np.float64
    v, u = np.meshgrid(np.arange(height, dtype=dtype), np.arange(width, dtype=dtype), indexing="ij")
    return np.stack([u, v], -1)


def depthmap_to_pts_cam(depth, K):
    """Z-depth maps to camera-frame pointmaps (MapAnything's ``pts3d_cam``).

    Args:
        depth: (*B, H, W) z-depth, metres (0 = invalid; the point is then the origin).
        K: (*B, 3, 3).
    Returns:
        (*B, H, W, 3) = depth * ((u - cx)/fx, (v - cy)/fy, 1).
    """
    H, W = depth.shape[-2:]
    grid = pixel_grid(H, W, like=depth)
    lead = depth.shape[:-2]
    uv = grid.reshape(*([1] * len(lead)), H * W, 2)
    pts = unproject(uv, depth.reshape(*lead, H * W), K)
    return pts.reshape(*lead, H, W, 3)


def ray_directions(K, height: int, width: int):
    """Unit ray directions of every pixel (MapAnything's ``ray_directions_cam``).

    Args:
        K: (*B, 3, 3) intrinsics.
    Returns:
        (*B, H, W, 3) unit vectors, OpenCV camera frame.
    """
    xp = _xp(K)
    ones = xp.ones(tuple(K.shape[:-2]) + (height, width), dtype=K.dtype)
    if xp is torch:
        ones = ones.to(K.device)
    rays = depthmap_to_pts_cam(ones, K)
    return rays / xp.linalg.norm(rays, axis=-1, keepdims=True) if xp is np else rays / rays.norm(dim=-1, keepdim=True)


def depth_z_to_along_ray(depth, rays):
    """Z-depth (*B, H, W) and unit rays (*B, H, W, 3) -> depth along the ray (*B, H, W) = z / ray_z."""
    return depth / rays[..., 2]


def scale_intrinsics(K, sx: float, sy: float):
    """Intrinsics after resizing an image by (sx, sy) under the integer-pixel-centre convention.

    A point at continuous coordinate u maps to ``u' + 0.5 = sx (u + 0.5)``: fx' = sx fx, cx' = sx (cx + 0.5) - 0.5.
    """
    K2 = K.clone() if isinstance(K, torch.Tensor) else np.array(K, dtype=np.float64, copy=True)
    K2[..., 0, 0] = K[..., 0, 0] * sx
    K2[..., 1, 1] = K[..., 1, 1] * sy
    K2[..., 0, 2] = sx * (K[..., 0, 2] + 0.5) - 0.5
    K2[..., 1, 2] = sy * (K[..., 1, 2] + 0.5) - 0.5
    return K2


def crop_intrinsics(K, left: float, top: float):
    """Intrinsics after cropping ``left`` columns and ``top`` rows off an image: cx -= left, cy -= top."""
    K2 = K.clone() if isinstance(K, torch.Tensor) else np.array(K, dtype=np.float64, copy=True)
    K2[..., 0, 2] = K[..., 0, 2] - left
    K2[..., 1, 2] = K[..., 1, 2] - top
    return K2
