"""Schema of the ``loss`` config group (``coopmap/configs/loss/*.yaml``): one dataclass per loss.

The combined criterion is ``base.weight * base + depth + scale_distill_weight * distill
+ coop_consistency_weight * consistency`` (see :func:`coopmap.losses.build.build_criterion`). Every improvement is
off by default, so each ablation is one override, e.g. ``loss.depth.mask_aware=true``, ``loss.depth.height_weight=0.1``,
``loss.scale_distill_weight=1``, ``loss.coop_consistency_weight=1``. Choices are plain strings (so configs stay
plain containers in checkpoints) checked when the dataclasses are built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import II, DictConfig, OmegaConf

from coopmap.errors import ConfigError


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {'|'.join(choices)}, got {value!r}")


def _check_non_negative(prefix: str, **values: float) -> None:
    for key, value in values.items():
        if value < 0:
            raise ConfigError(f"{prefix}.{key} must be >= 0, got {value}")


@dataclass
class BaseWeights:
    """Weights of the base loss's terms (detail names ``base/<field>``)."""

    #: normalised world points (view-0 frame), per pixel.
    pts3d: float = 1.0
    #: normalised depth along the ray, per pixel.
    depth: float = 1.0
    #: unit ray directions, every pixel (rays are known everywhere).
    rays: float = 1.0
    #: normalised camera translation relative to view 0.
    pose_t: float = 1.0
    #: camera rotation relative to view 0 (geodesic angle, radians).
    pose_r: float = 1.0
    #: log metric scale (reaches only ``metric_scaling_factor``).
    scale: float = 1.0


@dataclass
class BaseLossConfig:
    """Base geometry loss, MapAnything-like: scale-normalised points / depth / rays / pose plus metric scale."""

    #: weight of the whole base loss in the criterion (0 drops it).
    weight: float = 1.0
    #: False = naive: unlabelled pixels enter the per-pixel terms with target 0. Follows ``loss.depth.mask_aware``.
    mask_aware: bool = II("..depth.mask_aware")
    #: compare points / depth after the signed log transform ``x/|x| log1p|x|``.
    log_space: bool = True
    #: robust penalty rho (True) or plain L1 of the residual norm (False).
    robust: bool = True
    #: robust shape alpha in (0, 2) and scale c (in normalised units; radians for pose_r, log units for scale).
    robust_alpha: float = 0.5
    robust_c: float = 0.05
    weights: BaseWeights = field(default_factory=BaseWeights)

    def __post_init__(self) -> None:
        w = self.weights
        _check_non_negative("loss.base", weight=self.weight, robust_c=self.robust_c)
        _check_non_negative("loss.base.weights", **{k: getattr(w, k) for k in w.__dataclass_fields__})


@dataclass
class DepthLossConfig:
    """Improvement 1: mask-aware metric depth and a height prior on unlabelled pixels."""

    #: the single pixel-mask switch: True = per-pixel terms (here and in the base loss) use only labelled
    #: pixels (gt depth > 0 and valid_mask); False = naive, unlabelled pixels count with target 0.
    mask_aware: bool = False
    #: weight of the metric z-depth term ``depth/main`` (0 = off; the base loss has its own normalised depth).
    depth_weight: float = 0.0
    #: lambda_height: weight of the height prior ``height/penalty`` on every unlabelled pixel, sky included (the
    #: views' ``non_ambiguous_mask`` does not exempt any pixel); 0 = off.
    height_weight: float = 0.0
    #: metres above the ego ground plane (ego frame, z up) beyond which a predicted point is penalised.
    z_max: float = 4.0
    #: metres; if set, points below it are penalised too (a hinge below the ground), e.g. -0.5.
    z_min: float | None = None
    #: robust penalty (True) or L1 (False) for the depth term.
    robust: bool = False
    robust_alpha: float = 0.5
    #: metres.
    robust_c: float = 0.5
    #: how predicted points reach the ego frame: pred = pts3d through T_ego_from_cam of view 0 and the predicted
    #: view-0 pose; gt_rig = each view's pts3d_cam through its own GT T_ego_from_cam.
    height_frame: str = "pred"

    def __post_init__(self) -> None:
        _check_choice("loss.depth.height_frame", self.height_frame, ("pred", "gt_rig"))
        _check_non_negative("loss.depth", depth_weight=self.depth_weight, height_weight=self.height_weight,
                            robust_c=self.robust_c)
        if self.z_min is not None and self.z_min >= self.z_max:
            raise ConfigError(f"loss.depth.z_min ({self.z_min}) must be below z_max ({self.z_max})")


@dataclass
class DistillConfig:
    """Improvement 2: scale and pose distillation from a frozen teacher (targets in the batch views)."""

    #: weight of |log S_student - log S_teacher| / tau, S = the metric scene scale (mean |pts3d_cam| over the
    #: labelled pixels of the selected views: s times the up-to-scale distances, so invariant to the split).
    scale_weight: float = 1.0
    #: weight of the relative-to-view-0 camera translation error (metres) / tau.
    trans_weight: float = 1.0
    #: weight of the relative-to-view-0 camera rotation error (geodesic, radians) / tau.
    rot_weight: float = 1.0
    #: temperature dividing every residual before the robust penalty (> 0).
    tau: float = 1.0
    #: robust penalty rho of each residual / tau (True) or the plain |residual| / tau (False).
    robust: bool = True
    robust_alpha: float = 0.5
    #: robust scale, in units of tau.
    robust_c: float = 1.0
    #: all = every view; ego = only the ego's views (agent_index == 0).
    views: str = "all"

    def __post_init__(self) -> None:
        _check_choice("loss.distill.views", self.views, ("all", "ego"))
        _check_non_negative("loss.distill", scale_weight=self.scale_weight, trans_weight=self.trans_weight,
                            rot_weight=self.rot_weight, robust_c=self.robust_c)
        if self.tau <= 0:
            raise ConfigError(f"loss.distill.tau must be > 0, got {self.tau}")


@dataclass
class ConsistencyConfig:
    """Improvement 3: multi-vehicle consistency (pairwise agent poses, rig, boxes)."""

    #: gt = predicted relative agent poses against the GT ones; prior = only hinge penalties (distance, tilt).
    mode: str = "gt"
    #: gt mode: pairwise relative translation error (metres) and rotation error (radians).
    pose_t_weight: float = 1.0
    pose_r_weight: float = 1.0
    #: prior mode: relu(|t_ij| - max_dist) (metres) and relu(tilt_ij - max_tilt_deg) (radians).
    prior_dist_weight: float = 1.0
    prior_tilt_weight: float = 1.0
    #: metres: the communication range (OpenCOOD's COM_RANGE).
    max_dist: float = 70.0
    #: degrees: largest relative roll/pitch (angle between the two vehicles' up axes).
    max_tilt_deg: float = 10.0
    #: prior mode with shared poses (docs/data.md): the predicted relative agent poses agree with the shared ones
    #: within their noise: relu(error - prior_shared_k x sigma) (metres, radians), sigma from the views'
    #: ``shared_pose_sigma``; 0 = off.
    prior_shared_t_weight: float = 0.0
    prior_shared_r_weight: float = 0.0
    prior_shared_k: float = 3.0
    #: rig consistency: every camera of an agent implies the same vehicle pose as its camera0 (m, rad).
    rig_t_weight: float = 1.0
    rig_r_weight: float = 1.0
    #: box consistency: predicted points of LiDAR returns inside a GT box stay in it (metres outside).
    box_weight: float = 1.0
    #: robust penalty on the pose errors (True) or the plain errors (False).
    robust: bool = False
    robust_alpha: float = 0.5
    robust_c: float = 1.0

    def __post_init__(self) -> None:
        _check_choice("loss.consistency.mode", self.mode, ("gt", "prior"))
        names = ("pose_t_weight", "pose_r_weight", "prior_dist_weight", "prior_tilt_weight", "rig_t_weight",
                 "rig_r_weight", "box_weight", "max_dist", "max_tilt_deg", "robust_c", "prior_shared_t_weight",
                 "prior_shared_r_weight", "prior_shared_k")
        _check_non_negative("loss.consistency", **{k: getattr(self, k) for k in names})


@dataclass
class LossConfig:
    """The whole training criterion; sections are built by :func:`coopmap.losses.build.build_criterion`."""

    base: BaseLossConfig = field(default_factory=BaseLossConfig)
    depth: DepthLossConfig = field(default_factory=DepthLossConfig)
    #: weight of the distillation loss (0 = off; needs teacher targets in the views).
    scale_distill_weight: float = 0.0
    distill: DistillConfig = field(default_factory=DistillConfig)
    #: weight of the multi-vehicle consistency loss (0 = off; on in the Stage-2 presets).
    coop_consistency_weight: float = 0.0
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)

    def __post_init__(self) -> None:
        _check_non_negative("loss", scale_distill_weight=self.scale_distill_weight,
                            coop_consistency_weight=self.coop_consistency_weight)


@dataclass
class _LossRoot:
    """A root holding only ``loss`` (for :func:`load_loss_config` and tests); the trainer has its own root."""

    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"loss": "default"}])
    loss: LossConfig = field(default_factory=LossConfig)


_ROOT_NAME = "_coopmap_loss_root"


def load_loss_config(overrides: Sequence[str] = (), preset: str = "default") -> DictConfig:
    """Compose ``configs/loss/<preset>.yaml`` against :class:`LossConfig` with Hydra overrides.

    Overrides use the trainer's paths, e.g. ``["loss.depth.mask_aware=true", "loss.distill.views=ego"]``.
    Returns the resolved ``loss`` node. Raises ConfigError on a misspelt key, a bad type or a bad choice.
    """
    from coopmap.config import compose  # local: coopmap.config imports every component's schema

    ConfigStore.instance().store(name=_ROOT_NAME, node=_LossRoot)
    cfg = compose(_ROOT_NAME, [f"loss={preset}", *overrides])
    as_loss_config(cfg.loss)  # validates the choices and ranges
    return cfg.loss


def as_loss_config(cfg: LossConfig | DictConfig | dict) -> LossConfig:
    """Any loss config (dataclass, DictConfig, plain dict) -> a validated :class:`LossConfig` with no interpolation."""
    if isinstance(cfg, LossConfig) and not isinstance(cfg.base.mask_aware, str):
        cfg.__post_init__()
        return cfg
    node = OmegaConf.merge(OmegaConf.structured(LossConfig), cfg)
    try:
        out = OmegaConf.to_object(node)
    except ConfigError:
        raise
    except Exception as err:  # OmegaConf validation errors
        raise ConfigError(" ".join(str(err).split())) from err
    assert isinstance(out, LossConfig)
    return out
