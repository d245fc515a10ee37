"""AdamW with parameter groups, and the warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from coopmap.errors import ConfigError
from coopmap.train.config import TrainerConfig


def _no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases and normalisation weights (every 1-D parameter, and scalars) get no weight decay."""
    return param.ndim <= 1 or name.endswith(".bias")


def param_groups(model: nn.Module, cfg: TrainerConfig) -> list[dict]:
    """Split trainable parameters into groups by (top-level submodule lr multiplier, decay / no decay).

    A multiplier of 0 freezes the submodule: its parameters get ``requires_grad=False`` and join no group.
    Returns groups for ``torch.optim.AdamW``, each with ``lr_scale`` (the multiplier) and ``name``.
    """
    unknown = set(cfg.lr_per_module) - {n for n, _ in model.named_children()}
    if unknown:
        children = sorted(n for n, _ in model.named_children())
        raise ConfigError(f"trainer.lr_per_module names unknown submodule(s) {sorted(unknown)}; the model has {children}")
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        scale = float(cfg.lr_per_module.get(name.split(".")[0], 1.0))
        if scale == 0.0:
            param.requires_grad_(False)
        if not param.requires_grad:
            continue
        groups.setdefault((scale, _no_decay(name, param)), []).append(param)
    return [
        {
            "params": params,
            "lr": cfg.lr * scale,
            "lr_scale": scale,
            "weight_decay": 0.0 if no_decay else cfg.weight_decay,
            "name": f"lr{scale:g}_{'no_decay' if no_decay else 'decay'}",
        }
        for (scale, no_decay), params in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]


def build_optimizer(model: nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    """``trainer.optimizer``: AdamW (default) or plain SGD (no momentum), over :func:`param_groups`."""
    if cfg.optimizer not in ("adamw", "sgd"):
        raise ConfigError(f"trainer.optimizer must be adamw or sgd, got {cfg.optimizer!r}")
    groups = param_groups(model, cfg)
    if not groups:
        raise ConfigError("the model has no trainable parameter (every submodule frozen by trainer.lr_per_module?)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.0, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based): linear warmup, then half-cosine decay.

    factor(0) = 1 / (warmup + 1); factor(warmup) = 1; factor(total - 1) = min_ratio.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    span = max(total_steps - 1 - warmup_steps, 1)
    progress = min(max((step - warmup_steps) / span, 0.0), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    """Set every group's lr to base_lr * lr_scale * factor; returns the unscaled lr (for logs)."""
    for group in optimizer.param_groups:
        group["lr"] = base_lr * group.get("lr_scale", 1.0) * factor
    return base_lr * factor
