"""The training criterion: a weighted sum of named loss sections, built from :class:`LossConfig` (never eval).

``SECTION_BUILDERS`` maps each section name to a function ``LossConfig -> (weight, module) | None`` (None = off).
The criterion calls every active module with ``(views, preds)``, sums ``weight * loss`` and merges the details,
adding ``loss/<section>`` (the section's loss before its weight) and ``loss/total``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from coopmap.errors import ConfigError
from coopmap.losses.base import BaseGeometryLoss
from coopmap.losses.batch import LossBatch
from coopmap.losses.config import LossConfig, as_loss_config
from coopmap.losses.consistency import CoopConsistencyLoss
from coopmap.losses.depth import DepthLoss
from coopmap.losses.distill import ScaleDistillLoss
from coopmap.losses.views import Views

Section = tuple[float, nn.Module]


def _base(cfg: LossConfig) -> Section | None:
    return (cfg.base.weight, BaseGeometryLoss(cfg.base)) if cfg.base.weight > 0 else None


def _depth(cfg: LossConfig) -> Section | None:
    on = cfg.depth.depth_weight > 0 or cfg.depth.height_weight > 0
    return (1.0, DepthLoss(cfg.depth)) if on else None  # the weights live inside the depth section


def _distill(cfg: LossConfig) -> Section | None:
    w = cfg.scale_distill_weight
    return (w, ScaleDistillLoss(cfg.distill)) if w > 0 else None


def _coop(cfg: LossConfig) -> Section | None:
    w = cfg.coop_consistency_weight
    return (w, CoopConsistencyLoss(cfg.consistency)) if w > 0 else None


#: section name -> builder; the names are the ``loss/<section>`` detail names.
SECTION_BUILDERS: dict[str, Callable[[LossConfig], Section | None]] = {
    "base": _base,
    "depth": _depth,
    "distill": _distill,
    "coop": _coop,
}


class Criterion(nn.Module):
    """``sum_k weight_k * section_k(views, preds)`` with merged details; no state besides its sections.

    Args:
        sections: (name, weight, module) triples; every module maps ``(views, preds, batch=LossBatch)`` to
            ``(loss, details)``.
    """

    def __init__(self, sections: Sequence[tuple[str, float, nn.Module]]):
        super().__init__()
        if not sections:
            raise ConfigError("every loss term is off: enable at least one (e.g. loss.base.weight=1)")
        self.names = [name for name, _, _ in sections]
        self.weights = {name: float(w) for name, w, _ in sections}
        self.sections = nn.ModuleDict({name: module for name, _, module in sections})

    def forward(self, views: Views, preds: Views) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total: torch.Tensor | None = None
        details: dict[str, torch.Tensor] = {}
        batch = LossBatch(views, preds)  # derived tensors shared by the sections, for this call only
        for name in self.names:
            loss, d = self.sections[name](views, preds, batch=batch)
            details.update(d)
            details[f"loss/{name}"] = loss.detach()
            weighted = self.weights[name] * loss
            total = weighted if total is None else total + weighted
        assert total is not None
        details["loss/total"] = total.detach()
        return total, details


def build_criterion(loss_cfg: LossConfig | DictConfig | dict) -> Criterion:
    """The criterion of a ``loss`` config (dataclass, composed DictConfig or plain dict); raises ConfigError."""
    cfg = as_loss_config(loss_cfg)
    sections = []
    for name, builder in SECTION_BUILDERS.items():
        built = builder(cfg)
        if built is not None:
            sections.append((name, built[0], built[1]))
    return Criterion(sections)
