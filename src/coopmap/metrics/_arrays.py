"""Input conversion shared by the metric functions (numpy out, one place for the checks)."""

from __future__ import annotations

import numpy as np
import torch

from coopmap.errors import ShapeError, check_shape


def to_numpy(x, dtype=None) -> np.ndarray:
    """A torch tensor (any device, with or without grad) or array-like -> numpy array (optionally cast)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16 or x.dtype == torch.float16:
            x = x.float()
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def as_points(name: str, pts, finite: bool = True) -> np.ndarray:
    """(N, 3) float points as numpy (float32 stays float32, anything else -> float64).

    Raises ShapeError on another shape and ValueError on a non-finite coordinate when ``finite``.
    """
    arr = to_numpy(pts)
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    check_shape(name, arr, (None, 3))
    if finite and arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{name}: {int((~np.isfinite(arr).all(-1)).sum())} points are not finite; filter them first")
    return arr


def same_shape(**arrays: np.ndarray) -> None:
    """Raise ShapeError unless every named array has the same shape (no silent broadcasting)."""
    shapes = {k: tuple(v.shape) for k, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ShapeError("shapes must match: " + ", ".join(f"{k} {s}" for k, s in shapes.items()))
