"""Periodic validation during training: the evaluation metrics on the first frames of ``data.val_split``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from omegaconf import DictConfig

from coopmap.data.dataset import ViewsDataset, collate_views, views_to_device
from coopmap.errors import DataError
from coopmap.evaluation.lidar import fused_lidar_ego
from coopmap.metrics import MetricsConfig, frame_metrics
from coopmap.train.distributed import DistContext

#: the columns averaged into the validation log (val/<name>).
VAL_KEYS = ("depth_rmse", "depth_mae", "pose_abs_t", "pose_abs_r", "scale_err", "chamfer", "fscore", "bev_iou",
            "floating_ratio", "vehicle_recall")


def make_validator(cfg: DictConfig, ctx: DistContext) -> Callable[[torch.nn.Module], dict[str, float]]:
    """A function model -> mean validation metrics (rank 0 computes; other ranks get an empty dict)."""
    dataset = ViewsDataset(cfg.data, split=cfg.data.val_split)
    indices = list(range(min(len(dataset), cfg.trainer.val_max_frames)))
    metrics_cfg = MetricsConfig()

    @torch.no_grad()
    def validate(model: torch.nn.Module) -> dict[str, float]:
        if not ctx.is_main:
            return {}
        was_training = model.training
        model.eval()
        rows = []
        for i in indices:
            rec = dataset.keys[i]
            try:
                views = collate_views([dataset[i]])
                lidar, _ = fused_lidar_ego(dataset.index.scenario(dataset.split, rec.scenario).path, rec.timestamp,
                                           rec.agent_ids)
            except DataError:
                continue
            preds = [{k: (v.float().cpu() if torch.is_tensor(v) else v) for k, v in p.items()}
                     for p in model(views_to_device(views, ctx.device))]
            rows.append(frame_metrics(views, preds, lidar, metrics_cfg))
        model.train(was_training)
        out = {}
        for key in VAL_KEYS:
            values = [r[key] for r in rows if math.isfinite(r.get(key, math.nan))]
            out[key] = float(np.mean(values)) if values else math.nan
        out["frames"] = float(len(rows))
        return out

    return validate
