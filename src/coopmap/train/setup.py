"""Build what a training run needs from its config: run folder, model, criterion, teacher, data, monitors."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from coopmap.errors import ConfigError
from coopmap.train.distributed import DistContext
from coopmap.train.sampling import ResumableBatchSampler


@dataclass
class RunParts:
    model: torch.nn.Module
    criterion: Callable[[list[dict], list[dict]], tuple[torch.Tensor, dict]]
    teacher: Any
    sampler: ResumableBatchSampler
    loader: DataLoader
    total_steps: int
    monitors: Callable[[list[dict], list[dict]], dict[str, float]]
    validator: Callable[[torch.nn.Module], dict[str, float]] | None
    mode_of: Callable[[list[dict]], str]
    dataset: Any = None


def prepare_run_dir(cfg: DictConfig, is_main: bool) -> Path:
    """Resolve ``out_dir`` (default runs/<name>/<time>), refuse to overwrite with resume=never, save config.yaml."""
    if cfg.out_dir in (None, ""):
        OmegaConf.set_struct(cfg, False)
        cfg.out_dir = str(Path("runs") / cfg.name / datetime.now().strftime("%Y%m%d_%H%M%S"))
        OmegaConf.set_struct(cfg, True)
    run_dir = Path(cfg.out_dir)
    if cfg.trainer.resume not in ("auto", "never"):
        raise ConfigError(f"trainer.resume must be auto or never, got {cfg.trainer.resume!r}")
    if cfg.trainer.resume == "never" and (run_dir / "last.pt").exists():
        raise ConfigError(f"{run_dir} already holds a run (last.pt) and trainer.resume=never; choose another out_dir")
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return run_dir


def _mode_of(views: list[dict]) -> str:
    return "coop" if int(views[-1]["agent_index"].max()) > 0 else "single"


def build_parts(cfg: DictConfig, ctx: DistContext) -> RunParts:
    from coopmap.data.dataset import TolerantViews, ViewsDataset, collate_tolerant
    from coopmap.losses.build import build_criterion
    from coopmap.models.factory import build_model
    from coopmap.train.monitors import batch_monitors

    model = build_model(cfg.model)
    if hasattr(model, "check_resolution"):  # before any data is read: the encoder's patch size (MapAnything)
        model.check_resolution(*cfg.data.resolution)
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"model={cfg.model.name} has no trainable parameter; it can be evaluated, not trained")
    criterion = build_criterion(cfg.loss)
    teacher = build_teacher(cfg, ctx.device)
    dataset = ViewsDataset(cfg.data, split=cfg.data.split)
    if len(dataset) == 0:
        raise ConfigError(f"no sample in {cfg.data.root} split {cfg.data.split!r} (mode {cfg.data.mode})")
    sampler = ResumableBatchSampler(
        dataset.n_views, batch_size=cfg.data.batch_size, seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size
    )
    n_batches = len(sampler)
    if n_batches == 0:
        raise ConfigError(
            f"{len(dataset)} samples cannot fill one batch of data.batch_size={cfg.data.batch_size} x "
            f"{ctx.world_size} process(es) with samples of equal view count"
        )
    # samples that fail to load come back as LoadFailure records (skipped and logged by the loop, see loop.py)
    loader = DataLoader(TolerantViews(dataset), batch_sampler=sampler, collate_fn=collate_tolerant,
                        num_workers=cfg.data.num_workers)
    tc = cfg.trainer
    total = tc.max_steps if tc.max_steps > 0 else math.ceil(n_batches * tc.epochs / tc.grad_accum)
    validator = None
    if tc.val_every > 0 and cfg.data.val_split:
        from coopmap.train.validate import make_validator

        validator = make_validator(cfg, ctx)
    return RunParts(model, criterion, teacher, sampler, loader, total, batch_monitors, validator, _mode_of, dataset)


def build_teacher(cfg: DictConfig, device: torch.device):
    """The distillation teacher (online or cached), or None when distillation is off."""
    weight = float(cfg.loss.get("scale_distill_weight", 0.0))
    ckpt, cache = cfg.distill.teacher_checkpoint, cfg.distill.teacher_cache
    if weight <= 0.0:
        return None
    if not ckpt and not cache:
        raise ConfigError(
            f"scale distillation is on (loss.scale_distill_weight={weight}) but no teacher is given: set "
            "distill.teacher_checkpoint=CKPT (online) or distill.teacher_cache=DIR (from `coopmap teacher-cache`)"
        )
    from coopmap.models.teacher import make_teacher_source

    return make_teacher_source(cfg, device)
