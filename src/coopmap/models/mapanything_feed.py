"""Feed MapAnything's own training script (``scripts/train.py``) with our OPV2V views and our losses.

Their script builds datasets and criteria by ``eval`` of strings from its Hydra config (spec section 5); those
strings can reach this module with ``__import__`` (docs/models.md section 4 gives the exact config lines):

- ``OPV2VViews(root=..., split=..., mode="single", num_views=4, resolution=(W, H), ...)``: a dataset in their
  dataset API (a subclass of ``mapanything.datasets.base.base_dataset.BaseDataset``, created on first access, so
  this module imports without mapanything). Its ``_get_views`` serves our views (:class:`ViewsDataset`) in the form
  their ``BaseDataset`` expects before its own processing: a PIL image, z-depth ``depthmap`` (H, W), intrinsics,
  cam2world pose (view 0 = world), ``non_ambiguous_mask``; their base then derives ``pts3d``, ``valid_mask``, rays,
  quaternions exactly as for their datasets. Our extra keys (agents, boxes padded to ``max_boxes``, box_index, dense
  depth...) travel as numpy arrays of the dtypes their type check accepts (float32, bool, int32, int64, uint8).
- ``CoopmapCriterion(preset="default", overrides={...})``: our criterion (``configs/loss/<preset>.yaml`` + loss
  overrides) called their way, ``criterion(batch, preds) -> (loss, {name: float})``, an ``nn.Module`` (they call
  ``.to(device)``). Batch tensors their step leaves on the CPU (``depthmap``) are moved to the predictions' device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from coopmap.errors import ConfigError, DataError

#: keys their BaseDataset computes itself (it refuses a view that already has pts3d or valid_mask).
DERIVED_BY_THEM = ("pts3d", "pts3d_cam", "valid_mask", "depth_along_ray", "ray_directions_cam", "camera_pose_quats",
                   "camera_pose_trans", "is_metric_scale", "is_synthetic", "idx", "true_shape", "data_norm_type")
#: per-sample box arrays, padded to a fixed count (their default collate stacks equal shapes only).
BOX_KEYS = ("boxes_pose", "boxes_half_extent", "boxes_id")
#: numpy dtypes their ``is_good_type`` accepts.
THEIR_DTYPES = (np.float32, np.bool_, np.int32, np.int64, np.uint8)


def _their_array(value: torch.Tensor) -> np.ndarray:
    arr = value.detach().cpu().numpy()
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu" and arr.dtype not in (np.int32, np.int64, np.uint8):
        return arr.astype(np.int64 if arr.dtype.itemsize > 4 else np.int32)
    return arr


def _pad_box(key: str, arr: np.ndarray, max_boxes: int) -> np.ndarray:
    pad = max_boxes - arr.shape[0]
    if key == "boxes_pose":
        filler = np.broadcast_to(np.eye(4, dtype=arr.dtype), (pad, 4, 4))
    elif key == "boxes_id":
        filler = np.full((pad,), -1, dtype=arr.dtype)
    else:
        filler = np.zeros((pad, *arr.shape[1:]), dtype=arr.dtype)
    return np.concatenate([arr, filler], axis=0)


def their_view(view: Mapping[str, Any], max_boxes: int = 128) -> dict[str, Any]:
    """One of our unbatched views (``ViewsDataset`` with ``norm_type=identity``) -> their ``_get_views`` view.

    Returns a dict with ``img`` (PIL RGB image), ``depthmap`` (H, W) float32 z-depth (0 = invalid),
    ``camera_intrinsics`` (3, 3), ``camera_pose`` (4, 4) cam2world OpenCV in the view-0 frame, and every other
    key of ours as str or a numpy array of a dtype in :data:`THEIR_DTYPES`; boxes padded to ``max_boxes``.
    """
    from PIL import Image

    img = view["img"]
    if img.min() < -1e-3 or img.max() > 1 + 1e-3:
        raise ConfigError("their_view needs views normalised with norm_type=identity (images in [0, 1])")
    out: dict[str, Any] = {"img": Image.fromarray((img.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy())}
    count = int(view["boxes_count"]) if "boxes_count" in view else 0
    if count > max_boxes:
        raise DataError(view.get("instance", "view"), f"{count} boxes, more than max_boxes={max_boxes}")
    for key, value in view.items():
        if key in DERIVED_BY_THEM or key == "img":
            continue
        if isinstance(value, torch.Tensor):
            arr = _their_array(value)
            out[key] = _pad_box(key, arr, max_boxes) if key in BOX_KEYS else arr
        elif isinstance(value, str):
            out[key] = value
    out["depthmap"] = out["depthmap"][..., 0]
    return out


def _make_dataset_class():
    from mapanything.datasets.base.base_dataset import BaseDataset

    from coopmap.data.config import DataConfig
    from coopmap.data.dataset import ViewsDataset

    class OPV2VViews(BaseDataset):
        """Our OPV2V samples in MapAnything's dataset API (module docstring). ``num_views``: views per sample served
        (the sample's first ones: the ego's cameras first; samples with fewer are left out); ``resolution``: (W, H),
        multiples of the encoder patch; ``max_boxes``: box arrays padded to this count."""

        def __init__(self, root: str, split: str = "train", mode: str = "single", num_views: int = 4,
                     resolution: tuple[int, int] = (518, 392), data_norm_type: str = "dinov2",
                     transform: str = "imgnorm", max_boxes: int = 128, is_synthetic: bool = False,
                     patch_size: int = 14, max_cav: int = 5, depth_source: str = "own", **base_kwargs: Any):
            super().__init__(num_views=num_views, split=split, resolution=tuple(resolution),
                             data_norm_type=data_norm_type, transform=transform, **base_kwargs)
            cfg = DataConfig(root=root, split=split, mode=mode, resolution=list(resolution), patch_size=patch_size,
                             max_cav=max_cav, depth_source=depth_source, norm_type="identity",
                             is_synthetic=is_synthetic)
            self.views = ViewsDataset(cfg, split=split)
            most = max(self.num_views) if isinstance(self.num_views, list) else self.num_views
            self.samples = [i for i, n in enumerate(self.views.n_views) if n >= most]
            if not self.samples:
                raise DataError(f"{root}/{split}", f"no sample with at least {most} views (mode {mode})")
            self.max_boxes = max_boxes
            self.is_metric_scale = True
            self.is_synthetic = is_synthetic
            self.resolution_wh = tuple(int(x) for x in resolution)

        def _load_data(self):
            pass

        def __len__(self) -> int:
            return len(self.samples)

        def _get_views(self, idx, num_views_to_sample, resolution):
            if tuple(resolution) != self.resolution_wh:
                raise ValueError(f"OPV2VViews serves {self.resolution_wh} (W, H), asked for {tuple(resolution)}")
            views = self.views[self.samples[idx]][:num_views_to_sample]
            return [their_view(v, self.max_boxes) for v in views]

    return OPV2VViews


_classes: dict[str, type] = {}


def __getattr__(name: str):  # PEP 562: OPV2VViews is created when first used (it needs mapanything)
    if name == "OPV2VViews":
        if name not in _classes:
            from coopmap.models.mapanything import import_mapanything

            import_mapanything()  # one-line errors for a missing package or dependency
            _classes[name] = _make_dataset_class()
        return _classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class CoopmapCriterion(nn.Module):
    """Our criterion called their way: ``criterion(batch, preds) -> (loss, {name: float})``.

    Args:
        preset: a loss config of ours (``configs/loss/<preset>.yaml``: default, depth, stage2, ...).
        overrides: loss config overrides, e.g. ``{"depth.weight": 2.0}``.
    """

    def __init__(self, preset: str = "default", overrides: Mapping[str, Any] | None = None):
        super().__init__()
        from coopmap.config import compose
        from coopmap.losses.build import build_criterion

        items = [f"loss.{k}={v}" for k, v in (overrides or {}).items()]
        cfg = compose("train", ["data.root=unused", f"loss={preset}", *items]).loss
        if float(cfg.get("scale_distill_weight", 0.0)) > 0:
            raise ConfigError("CoopmapCriterion: scale distillation needs teacher targets, which their loop does not "
                              "provide; set overrides={'scale_distill_weight': 0}")
        self.criterion = build_criterion(cfg)

    def forward(self, batch: Sequence[Mapping], preds: Sequence[Mapping]) -> tuple[torch.Tensor, dict[str, float]]:
        device = preds[0]["pts3d"].device
        views = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in view.items()} for view in batch]
        preds = [{k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in p.items()}
                 for p in preds]
        loss, details = self.criterion(views, preds)
        return loss, {k: float(v) for k, v in details.items()}
