"""Reading the batch views and predictions (docs/views.md) for the losses: checks, stacking, gathering, agents.

Every loss receives ``views`` and ``preds``: lists of V dicts of (B, ...) tensors. The helpers here check the keys
a loss needs, stack them to (B, V, ...) tensors, gather the pixels a term uses into flat rows
(:class:`PixelSet`) and read the agent layout of the view slots (:class:`AgentLayout`). Frames and the quantities
shared by several losses live in :mod:`coopmap.losses.batch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from coopmap.errors import ShapeError, check_shape

Views = Sequence[dict]


def check_keys(dicts: Views, which: str, spec: dict[str, tuple]) -> None:
    """Raise ShapeError unless every dict has every key of ``spec`` with its shape, the same B, H, W everywhere.

    Args:
        dicts: the V view (or prediction) dicts; which: "views" or "preds" (for messages).
        spec: key -> expected shape with symbols "B", "H", "W" (e.g. ``("B", "H", "W", 1)``) or ints / None.
    """
    if len(dicts) == 0:
        raise ShapeError(f"{which}: expected at least one view, got an empty list")
    sizes: dict[str, int] = {}
    for key, expected in spec.items():
        first = dicts[0].get(key)
        shape = getattr(first, "shape", None)
        if not isinstance(first, torch.Tensor) or len(shape) != len(expected) or not all(
                sizes.setdefault(e, n) == n if isinstance(e, str) else (e is None or e == n)
                for e, n in zip(expected, shape)):
            _raise_key_error(dicts, which, 0, key, expected, sizes)
        for v in range(1, len(dicts)):  # every view must match view 0 (same B, H, W and trailing sizes)
            x = dicts[v].get(key)
            if not isinstance(x, torch.Tensor) or x.shape != shape:
                _raise_key_error(dicts, which, v, key, expected, sizes)


def _raise_key_error(dicts: Views, which: str, v: int, key: str, expected: tuple, sizes: dict[str, int]) -> None:
    """The detailed error of :func:`check_keys` (slow path, only on failure)."""
    name = f"{which}[{v}]['{key}']"
    if key not in dicts[v]:
        raise ShapeError(f"{which}[{v}] lacks key '{key}' (expected shape {expected})")
    x = dicts[v][key]
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name}: expected a tensor of shape {expected}, got {type(x).__name__}")
    check_shape(name, x, tuple(None if isinstance(e, str) else e for e in expected))
    for sym, n in zip(expected, x.shape):
        if isinstance(sym, str) and sizes.get(sym, n) != n:
            raise ShapeError(f"{name}: {sym} = {n} but another tensor has {sym} = {sizes[sym]}")
    raise ShapeError(f"{name}: expected shape {expected}, got {tuple(x.shape)}")


def check_same_views(views: Views, preds: Views) -> None:
    """Raise ShapeError unless there are as many prediction dicts as views."""
    if len(views) != len(preds):
        raise ShapeError(f"got {len(views)} views but {len(preds)} prediction dicts")


def stack(dicts: Views, key: str) -> torch.Tensor:
    """Stack ``d[key]`` of every view: V tensors (B, ...) -> (B, V, ...)."""
    return torch.stack([d[key] for d in dicts], dim=1)


def transform_rows(T: torch.Tensor, rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Apply per-sample transforms to gathered rows: ``T[index[n]] rows[n]``.

    Args:
        T: (B, 4, 4); rows: (N, 3) points; index: (N,) sample of each row.
    Returns:
        (N, 3).
    """
    if T.shape[0] == 1:  # one sample: a single GEMM
        return torch.addmm(T[0, :3, 3], rows, T[0, :3, :3].transpose(0, 1))
    return (T[index, :3, :3] @ rows[:, :, None])[..., 0] + T[index, :3, 3]


def dot3(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | float = 0.0) -> torch.Tensor:
    """``sum_i x[..., i] w[..., i] + bias`` for 3-vectors, as a chain of ``addcmul`` (cheaper on CPU than a
    batched GEMM with an inner size of 3).

    Args:
        x: (*B, 3); w: (*B', 3) broadcastable against x without its last dim; bias: broadcastable.
    Returns:
        (*B,).
    """
    out = torch.as_tensor(bias, dtype=x.dtype, device=x.device) + x[..., 0] * w[..., 0]
    out = torch.addcmul(out, x[..., 1], w[..., 1])
    return torch.addcmul(out, x[..., 2], w[..., 2])


def sample_mean(values: torch.Tensor, index: torch.Tensor, n: int, empty: float = 0.0) -> torch.Tensor:
    """Mean of (N,) values per sample index in 0..n-1 -> (n,); ``empty`` where a sample has no value."""
    count = torch.bincount(index, minlength=n)
    sums = values.new_zeros(n).index_add(0, index, values)
    return torch.where(count > 0, sums / count.clamp_min(1), torch.full_like(sums, empty))


def labelled_masks(views: Views) -> list[torch.Tensor]:
    """Pixels with a LiDAR label, per view: ``depthmap > 0`` and ``valid_mask``. V tensors (B, H, W) bool."""
    return [(d["depthmap"][..., 0] > 0) & d["valid_mask"].bool() for d in views]


@dataclass(frozen=True)
class PixelSet:
    """Selected pixels of the V views' (B, H, W) maps, to gather per-pixel tensors as flat (N, C) rows.

    Gathering only the pixels a term uses (e.g. the ~3 % labelled ones) avoids full-resolution passes; gradients
    flow back through ``index_select``. Rows are ordered view by view.
    """

    #: per view, (n_v,) int64 indices into the flattened (B * H * W) pixels.
    flat: tuple[torch.Tensor, ...]
    #: (N,) int64 segment of every row: ``b * V + v``.
    segment: torch.Tensor
    #: (N,) int64 sample index b of every row.
    sample: torch.Tensor
    #: number of segments, B * V.
    n_segments: int

    @classmethod
    def from_masks(cls, masks: Sequence[torch.Tensor]) -> PixelSet:
        """From V (B, H, W) bool masks."""
        B, H, W = masks[0].shape
        V = len(masks)
        flat = tuple(m.reshape(-1).nonzero()[:, 0] for m in masks)
        sample = torch.cat([f // (H * W) for f in flat])
        view = torch.cat([torch.full_like(f, v) for v, f in enumerate(flat)])
        return cls(flat, sample * V + view, sample, B * V)

    def gather(self, dicts: Views, key: str) -> torch.Tensor:
        """Rows of ``d[key]`` ((B, H, W, C) or (B, H, W)) at the selected pixels of every view: (N, C)."""
        rows = []
        for d, f in zip(dicts, self.flat):
            x = d[key]
            x = x.reshape(-1, 1) if x.dim() == 3 else x.reshape(-1, x.shape[-1])
            rows.append(x.index_select(0, f))
        return torch.cat(rows)

    def counts(self) -> torch.Tensor:
        """(B * V,) number of selected pixels per (sample, view)."""
        return torch.bincount(self.segment, minlength=self.n_segments)

    def segment_sum(self, values: torch.Tensor) -> torch.Tensor:
        """(N,) per-row values -> (B * V,) sums per (sample, view); differentiable."""
        return values.new_zeros(self.n_segments).index_add(0, self.segment, values)


@dataclass(frozen=True)
class AgentLayout:
    """Which agent and camera every view slot holds (identical across the batch by construction)."""

    #: agent_index of each view, (V,).
    agent_of_view: tuple[int, ...]
    #: camera_index of each view, (V,).
    camera_of_view: tuple[int, ...]
    #: for each agent 0..n_agents-1, the view holding its reference camera (camera0, else its first view).
    ref_view: tuple[int, ...]

    @property
    def n_agents(self) -> int:
        return len(self.ref_view)


def agent_layout(views: Views) -> AgentLayout:
    """Read ``agent_index`` / ``camera_index`` of every view; raise ShapeError if they differ across the batch."""
    check_keys(views, "views", {"agent_index": ("B",), "camera_index": ("B",)})
    idx = torch.stack([stack(views, "agent_index"), stack(views, "camera_index")])  # (2, B, V)
    if bool((idx != idx[:, :1]).any()):
        v = int((idx != idx[:, :1]).any(0).any(0).nonzero()[0, 0])
        raise ShapeError(f"views[{v}]: agent_index / camera_index differ across the batch "
                         f"({idx[0, :, v].tolist()}, {idx[1, :, v].tolist()}): batches must be bucketed so that "
                         "every sample has the same agent layout")
    agents, cams = idx[:, 0].tolist()
    ids = sorted(set(agents))
    if ids != list(range(len(ids))):
        raise ShapeError(f"views: agent_index values must be 0..n-1, got {ids}")
    ref = []
    for a in ids:
        mine = [v for v in range(len(views)) if agents[v] == a]
        cam0 = [v for v in mine if cams[v] == 0]
        ref.append(cam0[0] if cam0 else mine[0])
    return AgentLayout(tuple(agents), tuple(cams), tuple(ref))


def view_mean(sums: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-view means ``sums / counts``, then their mean over the views with a nonzero count.

    Args:
        sums, counts: (B * V,) per (sample, view).
    Returns:
        mean: 0-dim (0 when every count is 0, never NaN); empty: 0-dim number of views with count 0.
    """
    nonempty = counts > 0
    per_view = sums / counts.clamp_min(1).to(sums.dtype)
    mean = (per_view * nonempty).sum() / nonempty.sum().clamp_min(1)
    return mean, (~nonempty).sum().to(sums.dtype)
