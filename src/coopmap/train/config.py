"""Schemas of the ``trainer`` and ``distill`` config nodes and the root ``train`` config."""

from __future__ import annotations

from dataclasses import dataclass, field

from coopmap.data.config import DataConfig
from coopmap.losses.config import LossConfig
from coopmap.models.config import ModelConfig


@dataclass
class TrainerConfig:
    #: stop after this many optimizer steps (wins over ``epochs`` when > 0).
    max_steps: int = 100
    #: number of passes over the data when ``max_steps`` <= 0.
    epochs: int = 1
    #: adamw (training) | sgd (plain SGD without momentum: an update exactly linear in the averaged gradient, which
    #: is how the DDP equivalence test compares 2 ranks with 1 process; also a sanity check for a new model).
    optimizer: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    #: AdamW's epsilon. Components whose gradient is far below it move like SGD instead of by +-lr.
    eps: float = 1e-8
    #: lr multiplier per top-level submodule (or parameter) name of the model; 0 freezes it. MapAnything's own
    #: names (spec section 8): encoder, info_sharing, dpt_feature_head, dpt_regressor_head, dense_head (shares
    #: the dpt heads' tensors), pose_head, scale_head, scale_token, ray_dirs_encoder, depth_encoder, ...
    #: Set as ``trainer.lr_per_module={encoder:0.1,info_sharing:0.5}`` or ``trainer.lr_per_module.encoder=0.1``.
    lr_per_module: dict[str, float] = field(default_factory=dict)
    warmup_steps: int = 10
    #: the cosine schedule decays to lr * min_lr_ratio at the last step.
    min_lr_ratio: float = 0.01
    grad_accum: int = 1
    #: clip the global gradient norm to this value (<= 0: no clipping).
    grad_clip: float = 1.0
    #: auto (bf16 on GPU, off on CPU) | off | bf16 | fp16
    amp: str = "auto"
    #: auto | cpu | cuda
    device: str = "auto"
    #: auto: continue from out_dir/last.pt if it exists; never: start fresh (refuses a non-empty run folder).
    resume: str = "auto"
    #: write last.pt every N steps (and at the end); step_N.pt every ``keep_every`` steps (0: never).
    save_every: int = 50
    keep_every: int = 0
    log_every: int = 1
    #: run validation every N steps on data.val_split (0: never).
    val_every: int = 0
    val_max_frames: int = 8
    #: stop after this many non-finite losses in a row.
    max_nonfinite: int = 5
    progress: bool = True


#: dict fields whose keys the user chooses: open for new keys under Hydra's struct mode (values still typed).
OPEN_DICT_KEYS = ("trainer.lr_per_module",)


@dataclass
class TeacherSourceConfig:
    #: checkpoint of the frozen teacher (online distillation); its model config is ``model`` unless
    #: ``teacher_model`` names another model (tiny | mapanything).
    teacher_checkpoint: str | None = None
    teacher_model: str | None = None
    #: a folder made by ``coopmap teacher-cache`` (cached distillation; no teacher forward during training).
    teacher_cache: str | None = None


@dataclass
class TrainConfig:
    """``coopmap train``: everything one training run needs (the resolved copy is saved in the run folder)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    distill: TeacherSourceConfig = field(default_factory=TeacherSourceConfig)
    #: the experiment preset's name (set by configs/experiment/*.yaml); names the default run folder.
    name: str = "default"
    #: the run folder; default runs/<name>/<time>.
    out_dir: str | None = None
    seed: int = 0
