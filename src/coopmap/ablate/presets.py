"""Ablation presets (sizes and step counts) and the seed plan's variants with the metric each one targets."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AblatePreset:
    #: image size [W, H] for training and evaluation (multiples of the patch size 14).
    resolution: list[int]
    stage1_steps: int
    stage2_steps: int
    #: evaluate at most this many frames per mode (0: all).
    eval_frames: int
    lr: float = 1e-3
    warmup_steps: int = 5
    #: tiny model sizes (Hydra overrides of model.*).
    model: dict = field(default_factory=dict)
    #: frames per metric in worst_frames.csv; also K of ``worst_pose_abs_t``.
    worst_k: int = 3


PRESETS: dict[str, AblatePreset] = {
    # a few steps on tiny images: the test suite's end-to-end check
    "micro": AblatePreset(resolution=[56, 42], stage1_steps=2, stage2_steps=2, eval_frames=1, worst_k=1,
                          model={"embed_dim": 32, "depth": 2, "num_heads": 2}),
    # the README demo on a 2-core CPU (< 10 minutes including data generation and the report)
    "quick": AblatePreset(resolution=[112, 84], stage1_steps=60, stage2_steps=40, eval_frames=0,
                          model={"embed_dim": 64, "depth": 4, "num_heads": 4}),
    # the default demo (< 30 minutes on a 2-core CPU)
    "full": AblatePreset(resolution=[126, 98], stage1_steps=150, stage2_steps=80, eval_frames=0,
                         model={"embed_dim": 64, "depth": 4, "num_heads": 4}),
}


@dataclass(frozen=True)
class Target:
    """What an improvement is expected to change, compared with the baseline (stage2) in ``mode``."""

    metric: str
    mode: str
    lower_is_better: bool = True
    expectation: str = ""


#: the Stage-2 variants in the seed plan's order; the first is the baseline.
VARIANTS = ["stage2", "stage2_mask", "stage2_mask_distill", "stage2_full"]
BASELINE = "stage2"
#: Stage 1 is evaluated too, as the reference the Stage-2 fine-tunes start from.
REFERENCE = "stage1"

TARGETS: dict[str, list[Target]] = {
    "stage2_mask": [Target("floating_ratio", "coop", True, "the floating layer shrinks")],
    "stage2_mask_distill": [
        Target("scale_err", "coop", True, "scale_err converges"),
        Target("pose_abs_t", "single", True, "single-vehicle pose_abs stops degrading"),
    ],
    "stage2_full": [Target("worst_pose_abs_t", "coop", True, "pose_abs on the worst coop frames drops")],
}

#: the columns of ablation.csv (means over the evaluated frames of a mode)
METRICS = ["depth_rmse", "depth_mae", "pose_abs_t", "pose_abs_r", "scale_err", "chamfer", "fscore", "bev_iou",
           "floating_ratio", "vehicle_recall", "worst_pose_abs_t"]
