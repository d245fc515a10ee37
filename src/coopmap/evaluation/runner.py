"""``evaluate(cfg) -> dict``: run a model over a split in each mode and write per-frame metrics.

Re-running into the same out_dir resumes: frames already in coop_metrics.csv are not recomputed. Rows are appended
whole as frames finish; at the end the CSV is rewritten in a fixed order (mode, scenario, timestamp, ego), so an
interrupted-and-resumed evaluation ends with exactly the CSV of an uninterrupted one. Under torchrun each rank
evaluates every world_size-th frame into its own part file and rank 0 merges them.
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from coopmap.csvio import AppendCsv
from coopmap.data.dataset import (
    ViewsDataset,
    collate_views,
    init_loader_worker,
    iterate_reporting_worker_death,
    views_to_device,
)
from coopmap.errors import CoopmapError, DataError
from coopmap.evaluation.lidar import fused_lidar_ego
from coopmap.evaluation.outputs import (
    COLUMNS,
    atomic_write_text,
    points_path,
    remove_stale_temporaries,
    row_key,
    save_points,
    sort_rows,
    write_summary,
    write_worst,
)
from coopmap.metrics import frame_clouds, frame_metrics
from coopmap.train import distributed


class _SafeFrames(Dataset):
    """The dataset's samples at the chosen indices; a sample that fails to load comes back as its error text."""

    def __init__(self, dataset: ViewsDataset, indices: list[int]):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        j = self.indices[i]
        try:
            return j, self.dataset[j]
        except DataError as err:
            return j, str(err)


def _collate_one(batch: list[tuple[int, Any]]) -> tuple[int, Any]:
    (j, item), = batch
    return j, item if isinstance(item, str) else collate_views([item])


def _row_base(rec, mode: str) -> dict[str, Any]:
    return {"scenario": rec.scenario, "timestamp": rec.timestamp, "ego_id": rec.ego_id, "mode": mode,
            "n_agents": len(rec.agent_ids), "n_views": rec.n_views}


def _nonfinite(preds: list[dict]) -> str | None:
    for v, p in enumerate(preds):
        for key in ("pts3d", "cam_trans", "cam_quats", "metric_scaling_factor"):
            if key in p and not torch.isfinite(p[key]).all():
                return f"non-finite prediction '{key}' in view {v}"
    return None


def _predict(model, views) -> list[dict] | str:
    """The model's predictions on CPU in float32, or the reason they cannot be scored."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad():
        preds = model(views_to_device(views, device))
    preds = [{k: (v.detach().float().cpu() if torch.is_tensor(v) else v) for k, v in p.items()} for p in preds]
    return _nonfinite(preds) or preds


def _score_frame(cfg: DictConfig, views, preds, rec, mode: str, scen_dir: str, out_dir: Path) -> dict[str, Any]:
    """One frame's metrics row (GT LiDAR, metrics, saved clouds); a data problem becomes a skipped row."""
    try:
        if cfg.eval.pc_metrics or cfg.eval.save_points:
            lidar, T_world_from_egolidar = fused_lidar_ego(scen_dir, rec.timestamp, rec.agent_ids)
        else:
            lidar, T_world_from_egolidar = np.zeros((0, 3)), np.eye(4)
    except DataError as err:
        return {"status": f"skipped: {err}"}
    metrics = frame_metrics(views, preds, lidar, cfg.eval.metrics)
    if not cfg.eval.pc_metrics:
        metrics = {k: (math.nan if k in _PC_KEYS else v) for k, v in metrics.items()}
    elif metrics.get("n_pred_points", 0) == 0:
        return {**metrics, "status": "skipped: empty predicted cloud in range"}
    if cfg.eval.save_points:
        clouds = frame_clouds(views, preds, lidar, cfg.eval.metrics)
        save_points(points_path(out_dir, (rec.scenario, rec.timestamp, rec.ego_id, mode)), **clouds,
                    T_world_from_egolidar=T_world_from_egolidar)
    return {**metrics, "status": "ok"}


_PC_KEYS = {"chamfer", "chamfer_pred_to_gt", "chamfer_gt_to_pred", "fscore", "precision", "recall", "bev_iou",
            "bev_precision", "bev_recall", "floating_ratio", "sky_float_ratio", "lidar_float_ratio", "vehicle_recall",
            "n_pred_points", "n_gt_points", "n_vehicles"}


def _mode_dataset(cfg: DictConfig, mode: str) -> ViewsDataset:
    data_cfg = OmegaConf.merge(cfg.data, {"mode": mode})
    return ViewsDataset(data_cfg, split=cfg.data.split)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate per ``cfg`` (a composed ``eval`` config). Returns {"out_dir", "rows", "ok", "skipped", "summary"}."""
    from coopmap.models.factory import build_model

    ctx = distributed.setup(cfg.eval.device)
    try:
        out_dir = Path(cfg.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if ctx.is_main:
            remove_stale_temporaries(out_dir)  # left by a run killed while writing (never read)
            atomic_write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        distributed.barrier(ctx)
        model = build_model(cfg.model).to(ctx.device).eval()
        part = out_dir / ("coop_metrics.csv" if not ctx.enabled else f".coop_metrics.rank{ctx.rank}.csv")
        csv = AppendCsv(part, COLUMNS)
        done = {row_key(r) for r in csv.rows()}
        for mode in cfg.eval.modes:
            _evaluate_mode(cfg, ctx, model, mode, csv, done, out_dir)
        distributed.barrier(ctx)
        if not ctx.is_main:
            return {"out_dir": str(out_dir)}
        rows = _merge(out_dir, ctx, csv, list(cfg.eval.modes))
        summary = write_summary(out_dir, rows)
        write_worst(out_dir, rows, cfg.eval.worst_k)
        ok = sum(r["status"] == "ok" for r in rows)
        return {"out_dir": str(out_dir), "rows": len(rows), "ok": ok, "skipped": len(rows) - ok, "summary": summary}
    finally:
        distributed.teardown(ctx)


def _evaluate_mode(cfg, ctx, model, mode: str, csv: AppendCsv, done: set, out_dir: Path) -> None:
    if mode not in ("single", "coop"):
        raise CoopmapError(f"eval.modes: unknown mode {mode!r} (single | coop)")
    dataset = _mode_dataset(cfg, mode)
    indices = list(range(len(dataset)))
    if cfg.eval.max_frames > 0:
        indices = indices[: cfg.eval.max_frames]
    indices = [i for i in indices[ctx.rank:: ctx.world_size]
               if row_key(_row_base(dataset.keys[i], mode)) not in done]
    loader = DataLoader(_SafeFrames(dataset, indices), batch_size=1, collate_fn=_collate_one,
                        num_workers=cfg.eval.workers,
                        worker_init_fn=init_loader_worker if cfg.eval.workers > 0 else None)
    progress = None
    if cfg.eval.progress and ctx.is_main and indices:
        from tqdm import tqdm

        progress = tqdm(total=len(indices), desc=f"eval {mode}", unit="frame", dynamic_ncols=True)
    workers = int(cfg.eval.metric_workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval-metrics") if workers > 0 else None
    pending: deque = deque()

    def finish(job, base: dict) -> None:
        row = job.result() if isinstance(job, Future) else job
        csv.append({**row, **base})
        if progress is not None:
            progress.update(1)

    try:
        for j, item in _frames(loader, dataset, indices):
            rec = dataset.keys[j]
            preds = item if isinstance(item, str) else _predict(model, item)
            if isinstance(preds, str):
                job: Any = {"status": f"skipped: {preds}"}
            else:
                scen_dir = dataset.index.scenario(dataset.split, rec.scenario).path
                args = (cfg, item, preds, rec, mode, scen_dir, out_dir)
                job = pool.submit(_score_frame, *args) if pool is not None else _score_frame(*args)
            pending.append((job, _row_base(rec, mode)))
            while len(pending) > 2 * workers:  # bounded: at most 2 frames per worker in flight
                finish(*pending.popleft())
        while pending:
            finish(*pending.popleft())
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if progress is not None:
            progress.close()


def _frames(loader: DataLoader, dataset: ViewsDataset, indices: list[int]):
    """The loader's (index, views or error text); a dead worker becomes a DataError naming the frames it held."""
    return iterate_reporting_worker_death(loader, dataset, lambda done: [[j] for j in indices[done:]])


def _merge(out_dir: Path, ctx, csv: AppendCsv, modes: list[str]) -> list[dict]:
    rows = list(csv.rows())
    final = AppendCsv(out_dir / "coop_metrics.csv", COLUMNS)
    if ctx.enabled:
        rows = final.rows() + [r for k in range(ctx.world_size)
                               for r in AppendCsv(out_dir / f".coop_metrics.rank{k}.csv", COLUMNS).rows()]
    unique = {row_key(r): r for r in rows}
    ordered = sort_rows(list(unique.values()), modes)
    final.rewrite(ordered)
    if ctx.enabled:
        for k in range(ctx.world_size):
            (out_dir / f".coop_metrics.rank{k}.csv").unlink(missing_ok=True)
    return ordered
