"""Dense camera depth ground truth, where a tree has it (never required).

Two sources, per camera image, first found wins:

- ``TTTTTT_depthK.npy`` beside the image (trees written by ``coopmap synth``): float32 z-depth in metres,
  0 = sky; exact, read only for synthetic trees.
- ``TTTTTT_depthK.png`` in HEAL's OPV2V-H encoding, beside the image or in HEAL's layout (a sibling root whose
  name has ``OPV2V`` replaced by ``OPV2V_Hetero``, same ``<split>/<scenario>/<agent>/`` path; HEAL's loader
  derives the depth path from the camera path that way). HEAL reads it as an 8-bit single-channel image and
  uses the pixel value as the depth in metres (``ToTensor(img) * 255`` then depth bins in metres); its LSS
  lifts pixels by (u d, v d, d), i.e. z-depth. So: value v in 1..254 = z-depth v metres (integer metres: about
  +-0.5 m); 255 = saturated (255 m or more: CARLA's sky is 1000 m), read as 0 = no surface in range, like the
  synthetic sky; 0 = nothing (read as 0). Resampled by nearest neighbour (quantised values are never blended).

docs/data.md "Dense depth" has the derivation and the commit of HEAL it was checked against.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from coopmap.data.images import check_png, read_dense_depth
from coopmap.errors import DataError

__all__ = ["HEAL_SATURATED", "check_depth_png", "depth_png_to_metres", "metres_to_depth_png", "find_dense_depth",
           "read_depth_png", "read_dense"]

#: the 8-bit value HEAL's depth PNGs hold for 255 m and beyond (sky).
HEAL_SATURATED = 255


def metres_to_depth_png(depth: np.ndarray) -> np.ndarray:
    """(H, W) z-depth metres (0 = sky) -> (H, W) uint8 in HEAL's encoding: round(z) clipped to 0..254, sky and
    z >= 254.5 m -> 255."""
    z = np.asarray(depth, dtype=np.float64)
    out = np.clip(np.round(z), 0, HEAL_SATURATED - 1).astype(np.uint8)
    out[(z <= 0) | (z >= HEAL_SATURATED - 0.5)] = HEAL_SATURATED
    return out


def depth_png_to_metres(values: np.ndarray) -> np.ndarray:
    """(H, W) uint8 HEAL depth -> (H, W) float32 metres, 0 where 0 or saturated (255)."""
    v = np.asarray(values)
    return np.where((v > 0) & (v < HEAL_SATURATED), v, 0).astype(np.float32)


def check_depth_png(path: Path, size: tuple[int, int]) -> None:
    """Cheap check of a HEAL depth PNG (no decoding): a complete PNG, 8-bit greyscale, of its camera's size.

    Raises:
        DataError: naming the file.
    """
    W, H, bits, colour = check_png(path)
    if bits != 8 or colour != 0:
        raise DataError(path, f"depth PNG must be 8-bit greyscale (HEAL's OPV2V-H encoding), got bit depth {bits}, "
                              f"colour type {colour}")
    if (W, H) != tuple(size):
        raise DataError(path, f"depth PNG is {W}x{H}, its camera image {size[0]}x{size[1]}")


def read_depth_png(path: str | os.PathLike[str], size: tuple[int, int]) -> np.ndarray:
    """A HEAL OPV2V-H depth PNG as (H, W) float32 z-depth metres (0 = none / saturated).

    Raises:
        DataError: unreadable, not 8-bit single channel, or not of the camera image's size (naming the file).
    """
    path = Path(path)
    check_depth_png(path, size)
    try:
        with Image.open(path) as im:
            im.load()
            values = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(path, f"unreadable depth PNG (truncated or corrupt: {err})") from None
    return depth_png_to_metres(values)


def _hetero_dir(root: Path, agent_dir: Path) -> Path | None:
    """HEAL's layout: the same relative path under ``<root parent>/<root name with OPV2V -> OPV2V_Hetero>``."""
    if "OPV2V" not in root.name or "OPV2V_Hetero" in root.name:
        return None
    try:
        rel = agent_dir.relative_to(root)
    except ValueError:
        return None
    return root.parent / root.name.replace("OPV2V", "OPV2V_Hetero") / rel


def find_dense_depth(root: str | os.PathLike[str], agent_dir: str | os.PathLike[str], ts: str, k: int,
                     synthetic: bool) -> Path | None:
    """The dense depth file of camera k of one agent frame (see module doc), or None."""
    agent_dir = Path(agent_dir)
    if synthetic and (agent_dir / f"{ts}_depth{k}.npy").exists():
        return agent_dir / f"{ts}_depth{k}.npy"
    name = f"{ts}_depth{k}.png"
    if (agent_dir / name).exists():
        return agent_dir / name
    other = _hetero_dir(Path(root), agent_dir)
    if other is not None and (other / name).exists():
        return other / name
    return None


def read_dense(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """(H, W) float32 z-depth metres of a file found by :func:`find_dense_depth`, and whether it is exact
    (``.npy``: resample by planar interpolation) or quantised (``.png``: nearest neighbour)."""
    if path.suffix == ".npy":
        return read_dense_depth(path, size), True
    return read_depth_png(path, size), False
