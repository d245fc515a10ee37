"""Schemas of the ``trainer`` and ``distill`` config groups."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainerConfig:
    #: stop after this many optimizer steps (wins over ``epochs`` when > 0).
    max_steps: int = 100
    #: number of passes over the data when ``max_steps`` <= 0.
    epochs: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    #: lr multiplier per top-level submodule name (e.g. {encoder: 0.1}); 0 freezes that submodule.
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


@dataclass
class DistillConfig:
    #: checkpoint of the frozen teacher (online distillation); its model config is ``model`` unless
    #: ``teacher_model`` names another model (tiny | mapanything).
    teacher_checkpoint: str | None = None
    teacher_model: str | None = None
    #: a folder made by ``coopmap teacher-cache`` (cached distillation; no teacher forward during training).
    teacher_cache: str | None = None
