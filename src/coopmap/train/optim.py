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


def lr_module_root(model: nn.Module) -> tuple[nn.Module, str]:
    """The module whose top-level names ``trainer.lr_per_module`` uses, and its parameter-name prefix.

    DDP's ``.module`` is looked through; a wrapper declaring ``lr_root_name`` (MapAnythingAdapter: ``"model"``) is
    looked through too, so a user names MapAnything's own submodules (``encoder``, ``info_sharing``, ...).
    """
    root, prefix = model, ""
    if isinstance(root, nn.parallel.DistributedDataParallel):
        root, prefix = root.module, "module."
    while (child := getattr(type(root), "lr_root_name", None)) is not None:
        root, prefix = getattr(root, child), f"{prefix}{child}."
    return root, prefix


def lr_module_names(model: nn.Module) -> list[str]:
    """Names ``trainer.lr_per_module`` accepts: top-level submodules and parameters of :func:`lr_module_root`."""
    root, _ = lr_module_root(model)
    return sorted({n for n, _ in root.named_children()} | {n for n, _ in root.named_parameters(recurse=False)})


def _param_scales(model: nn.Module, lr_per_module: dict[str, float]) -> list[tuple[str, nn.Parameter, float]]:
    """(name, parameter, lr multiplier) of every distinct parameter; a tensor shared by several top-level modules
    (MapAnything's ``dense_head`` and ``dpt_*_head``) takes the multiplier set for any of them (conflicts refused)."""
    root, prefix = lr_module_root(model)
    known = lr_module_names(model)
    unknown = sorted(set(lr_per_module) - set(known))
    if unknown:
        raise ConfigError(f"trainer.lr_per_module names unknown submodule(s) {unknown}; the model has {known}")
    owners: dict[int, tuple[str, nn.Parameter, dict[str, float]]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        top = name[len(prefix):].split(".")[0] if name.startswith(prefix) else None
        entry = owners.setdefault(id(param), (name, param, {}))
        if top in lr_per_module:
            entry[2][top] = float(lr_per_module[top])
    empty = sorted(set(lr_per_module) - {t for _, _, set_by in owners.values() for t in set_by})
    if empty:
        raise ConfigError(f"trainer.lr_per_module: {empty} hold no parameter (nothing to scale); the model has {known}")
    out = []
    for name, param, set_by in owners.values():
        if len(set(set_by.values())) > 1:
            raise ConfigError(f"trainer.lr_per_module: {sorted(set_by)} share parameter '{name}' but set different "
                              f"multipliers {set_by}; give them the same value")
        out.append((name, param, next(iter(set_by.values()), 1.0)))
    return out


def param_groups(model: nn.Module, cfg: TrainerConfig) -> list[dict]:
    """Split trainable parameters into groups by (top-level submodule lr multiplier, decay / no decay).

    ``cfg.lr_per_module`` maps top-level names of the model (:func:`lr_module_names`; for MapAnything its own:
    ``encoder``, ``info_sharing``, ``dpt_feature_head``, ``pose_head``, ``scale_token``...) to lr multipliers.
    A multiplier of 0 freezes the submodule: its parameters get ``requires_grad=False`` and join no group.
    Returns groups for ``torch.optim.AdamW``, each with ``lr_scale`` (the multiplier) and ``name``.
    """
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, param, scale in _param_scales(model, dict(cfg.lr_per_module)):
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
