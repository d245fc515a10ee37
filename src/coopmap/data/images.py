"""Camera images (PNG via Pillow), dense depth ``.npy`` of synthetic trees, and MapAnything's normalisation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from coopmap.errors import ConfigError, DataError

__all__ = ["NORM_STATS", "check_png", "read_image", "read_dense_depth", "normalize_image"]

#: data_norm_type -> (mean, std) applied to rgb / 255 (MapAnything, spec section 1).
NORM_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "dinov2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "croco": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "dust3r": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "identity": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def read_image(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> np.ndarray:
    """A camera image as (H, W, 3) uint8 RGB.

    Args:
        size: expected (W, H), checked when given.
    Raises:
        DataError: missing, truncated/corrupt, or of the wrong size.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB") if im.mode != "RGB" else im)
    except FileNotFoundError:
        raise DataError(path, "missing camera image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(path, f"unreadable image (truncated or corrupt: {err})") from None
    if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
        raise DataError(path, f"image is {rgb.shape[1]}x{rgb.shape[0]}, expected {size[0]}x{size[1]}")
    return rgb


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def check_png(path: str | os.PathLike[str]) -> tuple[int, int, int, int]:
    """Cheap PNG check without decoding: signature, IHDR first, the IEND chunk last (a complete stream).

    Returns:
        (width, height, bit depth, colour type) from the IHDR chunk.
    Raises:
        DataError: missing, not a PNG (e.g. garbage), no IHDR, or truncated (naming the file).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(33)
            f.seek(max(0, size - 12))
            tail = f.read(12)
    except FileNotFoundError:
        raise DataError(path, "missing image") from None
    except OSError as err:
        raise DataError(path, f"cannot read image ({err.strerror or err})") from None
    if not head.startswith(_PNG_SIGNATURE):
        raise DataError(path, f"not a PNG file (first bytes {head[:8]!r})")
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise DataError(path, "truncated or malformed PNG: no IHDR chunk")
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if width == 0 or height == 0:
        raise DataError(path, f"PNG header says {width}x{height} pixels")
    if tail != _PNG_IEND:
        raise DataError(path, f"truncated PNG: {size} bytes, the stream does not end with an IEND chunk")
    return width, height, head[24], head[25]


def read_dense_depth(path: str | os.PathLike[str], size: tuple[int, int]) -> np.ndarray:
    """A synthetic tree's dense z-depth ``.npy`` (H, W) float32 metres, 0 = sky; never unpickles."""
    path = Path(path)
    try:
        depth = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(path, "missing dense depth file") from None
    except (OSError, ValueError, EOFError) as err:
        raise DataError(path, f"unreadable depth .npy ({err})") from None
    if depth.shape != (size[1], size[0]):
        raise DataError(path, f"dense depth has shape {depth.shape}, expected (H, W) = ({size[1]}, {size[0]})")
    depth = depth.astype(np.float32, copy=False)
    if not np.isfinite(depth).all() or (depth < 0).any():
        raise DataError(path, "dense depth has negative or non-finite values")
    return depth


def normalize_image(rgb: np.ndarray, norm_type: str) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 ``(rgb / 255 - mean) / std`` for ``norm_type``."""
    if norm_type not in NORM_STATS:
        raise ConfigError(f"data.norm_type must be one of {sorted(NORM_STATS)}, got {norm_type!r}")
    mean, std = NORM_STATS[norm_type]
    scale = np.array([1.0 / (255.0 * s) for s in std], dtype=np.float32)
    shift = np.array([m / s for m, s in zip(mean, std)], dtype=np.float32)
    chw = np.ascontiguousarray(np.moveaxis(rgb, -1, 0)).astype(np.float32)
    chw *= scale[:, None, None]
    chw -= shift[:, None, None]
    return torch.from_numpy(chw)
