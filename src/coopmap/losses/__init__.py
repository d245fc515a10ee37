"""Training losses: the base geometry loss and the three improvements (see docs/losses.md).

Every loss is a pure function ``fn(views, preds, **settings) -> (loss, details)`` plus a thin module holding its
config; :func:`build_criterion` combines them from a :class:`LossConfig`.
"""

from coopmap.losses.base import BaseGeometryLoss, base_geometry_loss
from coopmap.losses.boxes import box_consistency_loss
from coopmap.losses.build import SECTION_BUILDERS, Criterion, build_criterion
from coopmap.losses.config import LossConfig, as_loss_config, load_loss_config
from coopmap.losses.consistency import (
    CoopConsistencyLoss,
    PairwisePoseConsistencyLoss,
    pairwise_pose_consistency_loss,
    pairwise_pose_errors,
    rig_consistency_loss,
)
from coopmap.losses.depth import DepthLoss, height_prior_loss, masked_depth_loss
from coopmap.losses.distill import (
    TEACHER_KEYS,
    TEACHER_QUATS_KEY,
    TEACHER_SCALE_KEY,
    TEACHER_SCENE_SCALE_KEY,
    TEACHER_TRANS_KEY,
    ScaleDistillLoss,
    scale_distill_loss,
)
from coopmap.losses.robust import penalty, robust_penalty, robust_penalty_sq, signed_log1p

__all__ = [
    "SECTION_BUILDERS",
    "TEACHER_KEYS",
    "TEACHER_QUATS_KEY",
    "TEACHER_SCALE_KEY",
    "TEACHER_SCENE_SCALE_KEY",
    "TEACHER_TRANS_KEY",
    "BaseGeometryLoss",
    "CoopConsistencyLoss",
    "Criterion",
    "DepthLoss",
    "LossConfig",
    "PairwisePoseConsistencyLoss",
    "ScaleDistillLoss",
    "as_loss_config",
    "base_geometry_loss",
    "box_consistency_loss",
    "build_criterion",
    "height_prior_loss",
    "load_loss_config",
    "masked_depth_loss",
    "pairwise_pose_consistency_loss",
    "pairwise_pose_errors",
    "penalty",
    "rig_consistency_loss",
    "robust_penalty",
    "robust_penalty_sq",
    "scale_distill_loss",
    "signed_log1p",
]
