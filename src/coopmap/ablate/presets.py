"""Ablation presets (sizes, steps, seeds), the variants in the seed plan's order, the comparisons that judge each
improvement against its predecessor, and the reference rows every metric is read beside."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AblatePreset:
    #: image size [W, H] for training and evaluation (multiples of the patch size 14).
    resolution: list[int]
    stage2_steps: int
    #: evaluate at most this many frames per mode (0: all).
    eval_frames: int
    #: every Stage-2 variant is trained once per seed (verdicts need >= 2).
    seeds: tuple[int, ...] = (0, 1, 2)
    lr: float = 1e-3
    warmup_steps: int = 5
    #: frames per metric in worst_frames.csv; also K of ``worst_pose_abs_t``.
    worst_k: int = 3
    #: frames sampled per seed for the train-median depth of the constant-depth reference.
    median_frames: int = 32


PRESETS: dict[str, AblatePreset] = {
    # a few steps on tiny images: the test suite's end-to-end check
    "micro": AblatePreset(resolution=[56, 42], stage2_steps=2, eval_frames=1, seeds=(0, 1), worst_k=1,
                          median_frames=2),
    # the README's quick demo on a 2-core CPU (< 10 minutes including data generation and the report).
    # quick and full run at the shipped pretrained model's training resolution: the tiny model does not transfer
    # across token grids (measured at 126x98: single pose_abs_r 93 deg instead of 11 deg at 112x84).
    "quick": AblatePreset(resolution=[112, 84], stage2_steps=30, eval_frames=0, seeds=(0, 1, 2)),
    # the default demo (< 30 minutes on a 2-core CPU)
    "full": AblatePreset(resolution=[112, 84], stage2_steps=100, eval_frames=0, seeds=(0, 1, 2)),
}


@dataclass(frozen=True)
class Comparison:
    """An improvement judged against its predecessor on the metric it targets, in ``mode``."""

    variant: str
    predecessor: str
    metric: str
    mode: str
    lower_is_better: bool = True
    expectation: str = ""


#: the Stage-2 variants in the seed plan's order. ``stage2`` (MapAnything's own loss: points/depth on valid pixels)
#: is the honest baseline; ``stage2_naive`` is the seed's "current" state (unlabelled pixels with target 0).
VARIANTS = ["stage2_naive", "stage2", "stage2_mask", "stage2_mask_distill", "stage2_full"]
BASELINE = "stage2"
#: the starting point of every variant and the distillation teacher (the shipped pretrained model by default).
START = "pretrained"

#: Improvement 3 with shared V2X poses (docs/ablation.md): the agents share their poses with seeded noise, the
#: models read them as MapAnything's pose inputs, and consistency is judged by how much of that noise it removes.
#: These variants are trained (once per seed) with ``pose_input_overrides``; their names carry ``V2X``.
V2X = "_v2x"
V2X_VARIANTS = ["stage2_mask_distill", "stage2_full"]
#: (position std in metres, yaw std in degrees) of the shared poses: a realistic default; (0, 0) is the control
DEFAULT_POSE_NOISE = (0.5, 0.5)


def pose_input_overrides(pos_std_m: float, yaw_std_deg: float) -> list[str]:
    """Hydra overrides of a V2X run: shared-pose noise (data) and MapAnything's pose inputs (model)."""
    return [f"data.shared_pose.pos_std_m={pos_std_m}", f"data.shared_pose.yaw_std_deg={yaw_std_deg}",
            "model.geometric_inputs=[camera_pose_quats,camera_pose_trans]"]


COMPARISONS: list[Comparison] = [
    Comparison("stage2_mask", "stage2", "sky_float_ratio", "coop", True,
               "the floating layer (sky points above z_max) shrinks"),
    Comparison("stage2_mask", "stage2_naive", "sky_float_ratio", "coop", True,
               "the floating layer shrinks compared with the naive loss too"),
    Comparison("stage2_mask", "stage2", "unlabelled_depth_abs_rel", "coop", True,
               "unlabelled non-sky surfaces (facades) are kept, not deleted (a loss here means the prior harms them)"),
    Comparison("stage2_mask_distill", "stage2_mask", "scale_err", "coop", True, "the metric scale stops drifting"),
    Comparison("stage2_mask_distill", "stage2_mask", "pose_abs_t", "single", True,
               "single-vehicle poses stop degrading"),
    Comparison("stage2_full", "stage2_mask_distill", "agent_pose_abs_t", "coop", True,
               "the agents' poses agree with the GT relative poses"),
    Comparison("stage2_full" + V2X, "stage2_mask_distill" + V2X, "agent_refine_t", "coop", False,
               "consistency removes more of the shared poses' translation noise (metres)"),
    Comparison("stage2_full" + V2X, "stage2_mask_distill" + V2X, "agent_refine_r", "coop", False,
               "consistency removes more of the shared poses' rotation noise (degrees)"),
]

#: reference rows: the oracle (GT) with knobs that trivialise one part of the prediction (docs/ablation.md).
#: ``{median}`` is the median LiDAR depth of the training split, ``{pos}``/``{yaw}`` the V2X runs' pose noise.
REFERENCES: dict[str, list[str]] = {
    "oracle": [],
    "identity_poses": ["model.pose_reference=identity"],
    "rig_at_ego": ["model.pose_reference=rig_at_ego"],
    "constant_depth": ["model.constant_depth_m={median}"],
    # the shared poses passed through (with the V2X runs' noise): refinement 0, input error = output error
    "shared_poses": ["model.pose_reference=shared", "data.shared_pose.pos_std_m={pos}",
                     "data.shared_pose.yaw_std_deg={yaw}"],
}
REFINE_METRICS = ("agent_refine_t", "agent_refine_r")
POSE_METRICS = ("pose_abs_t", "pose_abs_r", "agent_pose_abs_t", "agent_pose_abs_r", "worst_pose_abs_t")
DEPTH_METRICS = ("depth_abs_rel", "depth_rmse", "depth_mae", "scale_err", "sky_float_ratio",
                 "unlabelled_depth_abs_rel", "lidar_float_ratio", "floating_ratio")


def trivial_references(metric: str, mode: str) -> list[str]:
    """The references that trivialise what ``metric`` measures in ``mode``: identity poses (and, in coop mode,
    every agent at the ego origin) for pose metrics, constant depth for depth metrics, all of them for cloud metrics.

    In single mode ``rig_at_ego`` *is* the GT pose of every camera (the ego's own rig), so it is not trivial there.
    """
    poses = ["identity_poses"] + (["rig_at_ego"] if mode == "coop" else [])
    if metric in REFINE_METRICS:
        return ["shared_poses"]
    if metric in POSE_METRICS:
        return poses
    if metric in DEPTH_METRICS:
        return ["constant_depth"]
    return [*poses, "constant_depth"]


#: the columns of ablation.csv (per variant and mode: mean over seeds of the frame means, and the seed spread)
METRICS = ["depth_abs_rel", "depth_rmse", "scale_err", "pose_abs_t", "pose_abs_r", "agent_pose_abs_t",
           "input_agent_pose_abs_t", "agent_refine_t", "agent_refine_r",
           "sky_float_ratio", "unlabelled_depth_abs_rel", "lidar_float_ratio", "floating_ratio", "chamfer", "fscore",
           "vehicle_recall", "worst_pose_abs_t"]
#: metrics whose higher values are better (the rest: lower is better)
HIGHER_IS_BETTER = ("fscore", "vehicle_recall", "bev_iou", "agent_refine_t", "agent_refine_r")

