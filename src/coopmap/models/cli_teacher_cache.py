"""``coopmap teacher-cache``: run a frozen teacher once over a split and cache its distillation targets.

``coopmap teacher-cache model=tiny model.checkpoint=CKPT data.root=ROOT data.split=train data.mode=coop out_dir=DIR``

:func:`build_teacher_cache` does the work (importable); :func:`main` only parses the Hydra overrides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from coopmap.config import TeacherCacheConfig
from coopmap.data.dataset import views_to_device
from coopmap.errors import ConfigError
from coopmap.models.teacher import Teacher
from coopmap.models.teacher_cache import TeacherCacheWriter, data_fingerprint, teacher_fingerprint

_GROUP_HELP = """\
overrides (Hydra syntax, key=value):
  model=tiny|oracle|mapanything   the teacher; model.checkpoint=CKPT its weights (sha256 recorded in the cache)
  data=synthetic|opv2v            data.root=ROOT (required), data.split, data.mode=single|coop|mixed,
                                  data.resolution=[W,H], data.batch_size, ... (`--cfg` prints them all)
"""


def _usage() -> str:
    lines = [f"  {f.name}={_default(f)}" for f in fields(TeacherCacheConfig) if f.name not in ("data", "model")]
    return (
        "Run a frozen teacher once over a split and store, per view, its camera pose and metric scale (and, with "
        "store_depth=true, its depth pooled by depth_stride), so that training with scale distillation runs no "
        "teacher. The cache records the teacher checkpoint's sha256 and the data config and is refused by training "
        "with any other.\n\nexample:\n  coopmap teacher-cache model=tiny model.checkpoint=CKPT data.root=ROOT "
        "data.split=train data.mode=coop out_dir=DIR\n\n" + _GROUP_HELP + "\n".join(lines)
    )


def _default(f: Any) -> str:
    return str(f.default).lower() if isinstance(f.default, bool) else str(f.default)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but CUDA is not available (use device=cpu or auto)")
    return torch.device(name)


def _loader(cfg: DictConfig) -> Iterable[list[dict]]:
    from coopmap.data.dataset import make_loader

    return make_loader(cfg.data, cfg.data.split, shuffle=False, seed=cfg.seed)


def build_teacher_cache(cfg: DictConfig, batches: Iterable[list[dict]] | None = None, progress: bool = True) -> dict:
    """Run the teacher over ``cfg.data``'s split (or over ``batches``) and write the cache to ``cfg.out_dir``.

    Returns the cache manifest. Raises ConfigError for a tiny teacher without ``model.checkpoint`` (its weights
    would be random and unrecorded).
    """
    if cfg.model.name == "tiny" and not cfg.model.checkpoint:
        raise ConfigError("a tiny teacher needs its trained weights: set model.checkpoint=CKPT")
    if cfg.store_depth and cfg.depth_stride < 1:
        raise ConfigError(f"depth_stride must be >= 1, got {cfg.depth_stride}")
    torch.manual_seed(cfg.seed)
    device = _device(cfg.device)
    stride = int(cfg.depth_stride) if cfg.store_depth else None
    teacher = Teacher.from_config(cfg.model, depth_stride=stride).to(device)
    writer = TeacherCacheWriter(cfg.out_dir, teacher_fingerprint(cfg.model), data_fingerprint(cfg.data), stride)
    batches = _loader(cfg) if batches is None else batches
    for views in tqdm(batches, desc="teacher-cache", unit="batch", disable=not progress):
        views = views_to_device(views, device)
        writer.add(views, teacher.targets(views))
    return writer.finish()


def main(argv: list[str]) -> int:
    from coopmap.hydra_cli import run_with_overrides

    def run(cfg: DictConfig) -> None:
        manifest = build_teacher_cache(cfg)
        print(f"teacher cache: {manifest['num_samples']} samples written to {cfg.out_dir}")

    return run_with_overrides("teacher-cache", "teacher_cache", _usage(), argv, run)
