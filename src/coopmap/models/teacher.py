"""The frozen teacher for scale distillation, and the per-view targets it provides.

:class:`Teacher` is deliberately **not** an ``nn.Module``: assigned as an attribute of a trainer or of the student
it is not registered, so its parameters stay outside the optimizer, outside DDP and outside the student's
checkpoint. It holds a frozen copy of a model (``eval()``, ``requires_grad=False``) and runs it under
``torch.no_grad()`` through ``forward`` (MapAnything's ``infer()`` would run in inference mode).

Targets, per view (the losses consume exactly these batch-view keys; all detached tensors):
- ``teacher_cam_quats`` (B,4): the teacher's XYZW ``cam_quats`` (its predicted view-0 frame, sign as predicted);
- ``teacher_cam_trans`` (B,3): its ``cam_trans``, metres (already multiplied by its scale);
- ``teacher_metric_scale`` (B,1): its ``metric_scaling_factor`` s (a diagnostic: s alone is not identifiable);
- ``teacher_scene_scale`` (B,1): its **metric scene scale** of the view, the mean ``|pts3d_cam|`` (metres) over the
  view's labelled pixels (``depthmap > 0`` and ``valid_mask``; 0 without any), the scale distillation's target
  (``coopmap.losses.distill.view_scene_scale``): s times its up-to-scale distances, whatever the split;
- ``teacher_depth`` (B,h,w,1), only with ``depth_stride``: its ``depth_along_ray`` (metres) average-pooled over
  ``depth_stride`` x ``depth_stride`` pixel blocks (h = H // stride, w = W // stride).
They are the teacher's raw outputs: a loss comparing poses should re-express them relative to the teacher's view 0.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from coopmap.errors import ShapeError
from coopmap.models.config import ModelConfig

#: the target keys added to the batch views (always present).
TEACHER_KEYS = ("teacher_cam_quats", "teacher_cam_trans", "teacher_metric_scale", "teacher_scene_scale")
#: the optional low-resolution depth target.
TEACHER_DEPTH_KEY = "teacher_depth"


def teacher_targets_from_preds(
    preds: Sequence[Mapping[str, torch.Tensor]], views: Sequence[Mapping], depth_stride: int | None = None
) -> list[dict[str, torch.Tensor]]:
    """Select (and detach, float32) the distillation targets from a model's per-view outputs on ``views`` (their
    labelled pixels define ``teacher_scene_scale``)."""
    from coopmap.losses.distill import view_scene_scale

    if len(preds) != len(views):
        raise ShapeError(f"teacher targets: {len(preds)} predictions for {len(views)} views")
    out = []
    for pred, view in zip(preds, views):
        t = {
            "teacher_cam_quats": pred["cam_quats"],
            "teacher_cam_trans": pred["cam_trans"],
            "teacher_metric_scale": pred["metric_scaling_factor"],
            "teacher_scene_scale": view_scene_scale(view, pred),
        }
        if depth_stride:
            depth = pred["depth_along_ray"].permute(0, 3, 1, 2)  # (B,1,H,W)
            t[TEACHER_DEPTH_KEY] = F.avg_pool2d(depth, depth_stride).permute(0, 2, 3, 1)
        out.append({k: v.detach().to(torch.float32) for k, v in t.items()})
    return out


def attach_teacher_targets(
    views: Sequence[Mapping], targets: Sequence[Mapping[str, torch.Tensor]]
) -> list[dict]:
    """New view dicts (shallow copies) with the teacher's target keys added; the inputs are left unchanged."""
    if len(views) != len(targets):
        raise ShapeError(f"teacher targets: {len(targets)} views of targets for {len(views)} batch views")
    out = []
    for i, (view, target) in enumerate(zip(views, targets)):
        B = view["img"].shape[0]
        for key, value in target.items():
            if value.shape[0] != B:
                raise ShapeError(f"view {i}, '{key}': batch {value.shape[0]} but the view's batch is {B}")
        out.append({**view, **target})
    return out


class Teacher:
    """A frozen copy of a pretrained model that provides distillation targets.

    Args:
        model: the pretrained model (deep-copied unless ``copy_model=False``; the copy is frozen, the original
            untouched).
        depth_stride: also return ``teacher_depth`` pooled by this stride (None: poses and scale only).
    """

    def __init__(self, model: nn.Module, depth_stride: int | None = None, copy_model: bool = True):
        self.model = copy.deepcopy(model) if copy_model else model
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.depth_stride = depth_stride

    @classmethod
    def from_config(cls, model_cfg: ModelConfig | DictConfig | Mapping, depth_stride: int | None = None) -> Teacher:
        """Build the teacher from a ``model`` config (its ``checkpoint`` holds the pretrained weights)."""
        from coopmap.models.factory import build_model

        return cls(build_model(model_cfg), depth_stride=depth_stride, copy_model=False)

    def to(self, device: torch.device | str) -> Teacher:
        self.model.to(device)
        return self

    def parameters(self) -> Iterator[nn.Parameter]:
        """The frozen parameters (for checks; never give them to an optimizer)."""
        return self.model.parameters()

    @torch.no_grad()
    def predict(self, views: Sequence[Mapping]) -> list[dict[str, torch.Tensor]]:
        """The teacher's full per-view outputs (no gradients, eval mode)."""
        self.model.eval()
        return self.model(views)

    def targets(self, views: Sequence[Mapping]) -> list[dict[str, torch.Tensor]]:
        """Per-view distillation targets (see module docstring), computed under ``torch.no_grad()``."""
        return teacher_targets_from_preds(self.predict(views), views, self.depth_stride)


def teacher_model_config(cfg: DictConfig) -> ModelConfig:
    """The teacher's model config in a training config: ``model`` with ``name = distill.teacher_model`` (default:
    the student's) and ``checkpoint = distill.teacher_checkpoint``."""
    from coopmap.models.factory import as_model_config

    mc = as_model_config(cfg.model)
    mc.name = cfg.distill.teacher_model or mc.name
    mc.checkpoint = cfg.distill.teacher_checkpoint
    return mc


class OnlineTeacherSource:
    """Runs the frozen teacher on every batch; ``attach`` adds its targets to the views in place."""

    def __init__(self, teacher: Teacher):
        self.teacher = teacher

    def attach(self, views: list[dict], mode: str | None = None) -> None:
        for view, target in zip(views, self.teacher.targets(views)):
            view.update(target)


class CachedTeacherSource:
    """Reads the targets from a teacher cache; ``attach`` adds them to the views in place (no model, no forward)."""

    def __init__(self, cache):
        self.cache = cache

    def attach(self, views: list[dict], mode: str | None = None) -> None:
        for view, target in zip(views, self.cache.lookup(views, mode)):
            view.update(target)


def make_teacher_source(cfg: DictConfig, device: torch.device | str):
    """The training run's teacher: cached when ``distill.teacher_cache`` is set, else online.

    A cache is checked against ``data`` and, when ``distill.teacher_checkpoint`` is also given, against the
    teacher's checkpoint hash and model config (CheckpointError saying what differs).
    """
    if cfg.distill.teacher_cache:
        from coopmap.models.teacher_cache import TeacherCache

        model_cfg = teacher_model_config(cfg) if cfg.distill.teacher_checkpoint else None
        return CachedTeacherSource(TeacherCache(cfg.distill.teacher_cache, model_cfg=model_cfg, data_cfg=cfg.data))
    return OnlineTeacherSource(Teacher.from_config(teacher_model_config(cfg)).to(device))
