"""Resize-to-cover then centre-crop to the output resolution, with intrinsics kept exact.

Pixel centres are at integer coordinates (docs/conventions.md): resizing by (sx, sy) maps ``u + 0.5`` to
``sx (u + 0.5)`` and cropping ``left`` columns subtracts ``left``; the same mapping drives the image resampling
(PIL's ``box`` argument), the intrinsics (coopmap.geometry.scale_intrinsics / crop_intrinsics) and the nearest
neighbour resampling of dense maps, so the three stay consistent to floating-point precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from coopmap.errors import ConfigError
from coopmap.geometry import crop_intrinsics, scale_intrinsics

__all__ = ["ResizeCrop", "plan_resize_crop", "resize_crop_image", "resize_crop_intrinsics", "resize_crop_nearest",
           "resize_crop_depth", "check_resolution"]


@dataclass(frozen=True)
class ResizeCrop:
    """Resize a ``src_w x src_h`` image by (sx, sy), then keep columns [left, left + out_w) and rows
    [top, top + out_h)."""

    src_w: int
    src_h: int
    out_w: int
    out_h: int
    sx: float
    sy: float
    left: int
    top: int

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The kept region in source pixel-edge coordinates (PIL's ``box``)."""
        return (self.left / self.sx, self.top / self.sy, (self.left + self.out_w) / self.sx,
                (self.top + self.out_h) / self.sy)


def check_resolution(resolution, patch_size: int) -> tuple[int, int]:
    """Validate ``data.resolution`` = [W, H] (positive multiples of ``patch_size``); returns (W, H)."""
    vals = list(resolution)
    if len(vals) != 2 or any(int(v) != v or v <= 0 for v in vals):
        raise ConfigError(f"data.resolution must be [W, H] positive integers, got {vals}")
    w, h = int(vals[0]), int(vals[1])
    if patch_size <= 0 or w % patch_size or h % patch_size:
        raise ConfigError(f"data.resolution {w}x{h} must be multiples of data.patch_size={patch_size} "
                          f"(e.g. {max(1, round(w / patch_size)) * patch_size}x"
                          f"{max(1, round(h / patch_size)) * patch_size})")
    return w, h


def plan_resize_crop(src_size: tuple[int, int], out_size: tuple[int, int]) -> ResizeCrop:
    """The smallest resize covering ``out_size`` (keeping the aspect ratio up to rounding), then a centre crop.

    The resized size is rounded so that the crop is symmetric (an even number of pixels cut, half on each side):
    the image centre stays the output's centre, so a CARLA camera's optical axis (through the geometric centre)
    lands on ((W - 1)/2, (H - 1)/2) at any output size. The aspect ratio changes by at most one pixel in W1 or H1.

    Args:
        src_size, out_size: (W, H) in pixels.
    """
    W0, H0 = (int(v) for v in src_size)
    W, H = (int(v) for v in out_size)
    s = max(W / W0, H / H0)
    W1 = W + 2 * max(0, round((W0 * s - W) / 2))
    H1 = H + 2 * max(0, round((H0 * s - H) / 2))
    return ResizeCrop(W0, H0, W, H, W1 / W0, H1 / H0, (W1 - W) // 2, (H1 - H) // 2)


def resize_crop_image(rgb: np.ndarray, plan: ResizeCrop) -> np.ndarray:
    """(H0, W0, 3) uint8 -> (H, W, 3) uint8, bicubic (antialiased when shrinking: PIL widens the filter)."""
    if rgb.shape[1] != plan.src_w or rgb.shape[0] != plan.src_h:
        raise ValueError(f"image is {rgb.shape[1]}x{rgb.shape[0]}, plan expects {plan.src_w}x{plan.src_h}")
    if plan.sx == 1 and plan.sy == 1:
        return np.ascontiguousarray(rgb[plan.top:plan.top + plan.out_h, plan.left:plan.left + plan.out_w])
    out = Image.fromarray(rgb).resize((plan.out_w, plan.out_h), resample=Image.Resampling.BICUBIC, box=plan.box)
    return np.asarray(out)


def resize_crop_intrinsics(K, plan: ResizeCrop):
    """(*B, 3, 3) intrinsics at the source resolution -> at the output resolution (numpy or torch)."""
    return crop_intrinsics(scale_intrinsics(K, plan.sx, plan.sy), plan.left, plan.top)


def resize_crop_nearest(grid: np.ndarray, plan: ResizeCrop) -> np.ndarray:
    """Nearest-neighbour resampling of a dense (H0, W0, ...) map at the output pixel centres.

    Output pixel (u, v) takes the source pixel containing its centre ``((u + left + 0.5) / sx - 0.5, ...)``.
    Right for maps whose values must not be blended (dense depth across an occlusion edge, labels).
    """
    cols = np.floor((np.arange(plan.out_w) + plan.left + 0.5) / plan.sx).astype(np.int64)
    rows = np.floor((np.arange(plan.out_h) + plan.top + 0.5) / plan.sy).astype(np.int64)
    return grid[np.clip(rows, 0, plan.src_h - 1)][:, np.clip(cols, 0, plan.src_w - 1)]


def _locally_planar(inv: np.ndarray, rel_tol: float) -> np.ndarray:
    """(H, W) bool from inverse depth (0 = none): the pixel and its 4 neighbours lie on one plane (the second
    differences of 1/z vanish). A missing neighbour (1/z = 0) breaks the test by itself."""
    ok = np.zeros(inv.shape, dtype=bool)
    c = inv[1:-1, 1:-1]
    tol = rel_tol * c
    ok[1:-1, 1:-1] = (np.abs(inv[1:-1, :-2] - 2 * c + inv[1:-1, 2:]) <= tol) \
        & (np.abs(inv[:-2, 1:-1] - 2 * c + inv[2:, 1:-1]) <= tol)
    # a border pixel is in its inner neighbour's stencil: it lies on that plane when the neighbour is planar
    ok[0], ok[-1] = ok[1], ok[-2]
    ok[:, 0], ok[:, -1] = ok[:, 1], ok[:, -2]
    return ok & (inv > 0)


def resize_crop_depth(depth: np.ndarray, plan: ResizeCrop, rel_tol: float = 1e-3) -> np.ndarray:
    """Dense z-depth (H0, W0) (0 = no surface) sampled at the output pixel centres.

    Where the four source pixels around an output pixel centre are *locally planar* (each pixel and its four
    neighbours lie on one plane: the second differences of 1/z vanish, to ``rel_tol``), the inverse depth is
    interpolated bilinearly, which is exact on planes (1/z is affine in the pixel coordinates of a plane, at any
    slant); elsewhere (occlusion edges, sky, borders) the nearest source pixel is taken, so no depth is ever
    blended across an occlusion boundary. Float32 throughout (relative precision ~1e-6).
    """
    d = np.asarray(depth, dtype=np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d > 0, np.float32(1.0) / d, np.float32(0.0))
    u = (np.arange(plan.out_w) + plan.left + 0.5) / plan.sx - 0.5
    v = (np.arange(plan.out_h) + plan.top + 0.5) / plan.sy - 0.5
    u0 = np.clip(np.floor(u).astype(np.int64), 0, plan.src_w - 2)
    v0 = np.clip(np.floor(v).astype(np.int64), 0, plan.src_h - 2)
    a = np.clip(u - u0, 0.0, 1.0).astype(np.float32)[None, :]
    b = np.clip(v - v0, 0.0, 1.0).astype(np.float32)[:, None]
    planar = _locally_planar(inv, rel_tol)
    # separable gathers (rows, then columns) of the four corners around every output pixel centre
    p0, p1 = planar[v0], planar[v0 + 1]
    smooth = p0[:, u0] & p0[:, u0 + 1] & p1[:, u0] & p1[:, u0 + 1]
    i0, i1 = inv[v0], inv[v0 + 1]
    top = i0[:, u0] + a * (i0[:, u0 + 1] - i0[:, u0])
    bottom = i1[:, u0] + a * (i1[:, u0 + 1] - i1[:, u0])
    with np.errstate(divide="ignore", invalid="ignore"):
        interp = np.float32(1.0) / (top + b * (bottom - top))
    return np.where(smooth, interp, resize_crop_nearest(d, plan)).astype(np.float32)
