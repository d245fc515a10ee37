"""``train(cfg) -> dict``: the training loop (single process or DDP under torchrun).

One optimizer step consumes ``trainer.grad_accum`` batches. A checkpoint is written only at optimizer-step
boundaries and records the data position (epoch, global batch), every RNG state, the optimizer, scaler and step, so
a killed run resumed with ``trainer.resume=auto`` continues exactly where the last checkpoint left it.

A sample that fails to load (a missing, truncated or malformed file) does not stop the run: it is left out of
its batch, reported once on stderr and recorded in ``skipped_samples.csv`` (step, epoch, batch, sample, file,
reason); a batch with no loadable sample is skipped whole (on every rank). Only a whole epoch without one
loadable sample, or a data loader worker that dies, stops the run (DataError naming the samples).
"""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch.nn.parallel import DistributedDataParallel

from coopmap.config import to_plain
from coopmap.data.dataset import views_to_device
from coopmap.errors import CheckpointError, CoopmapError, DataError
from coopmap.models.checkpoint import state_dict_mismatch
from coopmap.models.contract import check_outputs
from coopmap.train import distributed
from coopmap.train.checkpoint import atomic_torch_save, load_checkpoint, rng_state, set_rng_state
from coopmap.train.logs import CsvLog, TensorBoardLog
from coopmap.train.optim import build_optimizer, lr_factor, set_lr
from coopmap.train.setup import RunParts, build_parts, prepare_run_dir


class TrainingDiverged(CoopmapError):
    """Too many non-finite losses in a row."""


def _amp(cfg_amp: str, device: torch.device) -> tuple[Any, torch.amp.GradScaler | None]:
    mode = cfg_amp if cfg_amp != "auto" else ("bf16" if device.type == "cuda" else "off")
    if mode == "off" or device.type != "cuda":
        return nullcontext, None
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def _sample(views: list[dict], b: int) -> list[dict]:
    """Sample ``b`` of a batch as a batch of one (tensors sliced, per-sample lists indexed)."""
    n = views[0]["img"].shape[0] if "img" in views[0] else views[0]["pts3d"].shape[0]
    return [{k: (v[b:b + 1] if (torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == n)
                 else [v[b]] if isinstance(v, list) and len(v) == n else v) for k, v in view.items()}
            for view in views]


def _forward_loss(parts: RunParts, model, views, autocast) -> tuple[torch.Tensor, dict[str, float], list]:
    """Forward the batch, then the loss as the **mean over samples** of the per-sample criterion.

    Per-sample evaluation makes the loss of a batch of B equal the mean of B batches of one, so gradient
    accumulation and DDP over N ranks give exactly the update of one process with the N-times larger batch.
    """
    if parts.teacher is not None:
        parts.teacher.attach(views, parts.mode_of(views))
    with autocast():
        preds = model(views)
    preds = [{k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in p.items()}
             for p in preds]
    batch = preds[0]["pts3d"].shape[0]
    if batch == 1:
        loss, details = parts.criterion(views, preds)
        return loss, {k: float(v) for k, v in details.items()}, preds
    total, sums = 0.0, {}
    for b in range(batch):
        loss_b, details_b = parts.criterion(_sample(views, b), _sample(preds, b))
        total = total + loss_b / batch
        for k, v in details_b.items():
            sums[k] = sums.get(k, 0.0) + float(v) / batch
    return total, sums, preds


def _resume(run_dir: Path, cfg: DictConfig, model, optimizer, scaler) -> tuple[int, int, int]:
    """Load last.pt when trainer.resume=auto and it exists. Returns (step, epoch, batch_in_epoch)."""
    last = run_dir / "last.pt"
    if cfg.trainer.resume != "auto" or not last.exists():
        return 0, 0, 0
    ck = load_checkpoint(last)
    problems = state_dict_mismatch(model, ck.get("model") or {})
    if problems:
        raise CheckpointError(f"{last}: does not fit the model built from the config ({'; '.join(problems)}); "
                              "resume with the run's own config.yaml or choose another out_dir")
    try:
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        set_rng_state(ck["rng"])
        return int(ck["step"]), int(ck["epoch"]), int(ck["batch_in_epoch"])
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{last}: cannot resume from it ({type(err).__name__}: {err}); was it written by "
                              "another version or config?") from err


def _remove_stale_temporaries(run_dir: Path) -> None:
    """Delete checkpoint temp files left by a run killed while saving (never read; as large as a checkpoint)."""
    for tmp in run_dir.glob(".*.pt.*.tmp"):
        tmp.unlink(missing_ok=True)


def _save(path: Path, model, optimizer, scaler, step: int, epoch: int, batch: int, cfg: DictConfig) -> None:
    atomic_torch_save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": {"step": step},
            "scaler": scaler.state_dict() if scaler is not None else {},
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": batch,
            "rng": rng_state(),
            "config": to_plain(cfg),
        },
        path,
    )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train per ``cfg`` (a composed ``train`` config). Returns a summary dict (steps, final loss, paths, counts)."""
    ctx = distributed.setup(cfg.trainer.device)
    try:
        return _train(cfg, ctx)
    finally:
        distributed.teardown(ctx)


def _train(cfg: DictConfig, ctx: distributed.DistContext) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    run_dir = prepare_run_dir(cfg, ctx.is_main)
    parts = build_parts(cfg, ctx)
    model = parts.model.to(ctx.device)
    optimizer = build_optimizer(model, cfg.trainer)
    autocast, scaler = _amp(cfg.trainer.amp, ctx.device)
    if ctx.is_main:
        _remove_stale_temporaries(run_dir)
    step, epoch, batch_pos = _resume(run_dir, cfg, model, optimizer, scaler)
    csv_log = CsvLog(run_dir / "train_log.csv") if ctx.is_main else None
    if csv_log is not None:
        csv_log.truncate_after(step)
    skip_log = CsvLog(run_dir / ("skipped_samples.csv" if ctx.is_main else f"skipped_samples.rank{ctx.rank}.csv"))
    skip_log.truncate_after(step)
    tb = TensorBoardLog(run_dir / "tb" if ctx.is_main else None)
    net = DistributedDataParallel(model, find_unused_parameters=True) if ctx.enabled else model
    total = parts.total_steps
    loop = _Loop(cfg, ctx, parts, net, model, optimizer, scaler, autocast, csv_log, tb, run_dir, skip_log)
    try:
        step, epoch, batch_pos = loop.run(step, epoch, batch_pos, total)
    finally:
        tb.close()
        loop.close_progress()
    if ctx.is_main:
        _save(run_dir / "last.pt", model, optimizer, scaler, step, epoch, batch_pos, cfg)
        if cfg.model.name == "mapanything":  # their own format too: loads strictly in MapAnything's code
            from coopmap.models.export import export_model

            export_model(model, run_dir / "mapanything.pth", step, to_plain(cfg), str(run_dir / "last.pt"))
    ddp_diff = distributed.max_param_difference(model, ctx)
    if ctx.enabled and ctx.is_main:
        (run_dir / "ddp_check.json").write_text(json.dumps({"world_size": ctx.world_size,
                                                            "max_abs_param_diff_across_ranks": ddp_diff}))
    distributed.barrier(ctx)
    return {"run_dir": str(run_dir), "steps": step, "last_loss": loop.last_loss, "nonfinite_skipped": loop.skipped,
            "first_loss": loop.first_loss, "is_main": ctx.is_main, "ddp_max_param_diff": ddp_diff,
            "skipped_samples": loop.bad_samples}


class _Loop:
    """The step loop; holds the mutable counters of one run (not a Module, never saved)."""

    def __init__(self, cfg, ctx, parts, net, model, optimizer, scaler, autocast, csv_log, tb, run_dir, skip_log):
        self.cfg, self.ctx, self.parts, self.net, self.model = cfg, ctx, parts, net, model
        self.optimizer, self.scaler, self.autocast = optimizer, scaler, autocast
        self.csv_log, self.tb, self.run_dir, self.skip_log = csv_log, tb, run_dir, skip_log
        self.skipped, self.nonfinite_streak = 0, 0
        self.bad_samples = 0
        self.reported: set[int] = set()
        self.contract_checked = False
        self.first_loss: float | None = None
        self.last_loss = math.nan
        self.progress = None
        self.val_log = CsvLog(run_dir / "val_log.csv") if ctx.is_main and parts.validator is not None else None

    def close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()

    def run(self, step: int, epoch: int, batch_pos: int, total: int) -> tuple[int, int, int]:
        tc = self.cfg.trainer
        if self.val_log is not None:
            self.val_log.truncate_after(step)
        if self.ctx.is_main and tc.progress:
            from tqdm import tqdm

            self.progress = tqdm(total=total, initial=step, desc="train", unit="step", dynamic_ncols=True)
        while step < total:
            self.parts.sampler.set_position(epoch, batch_pos)
            window: list[list[dict]] = []
            whole_epoch, used = batch_pos == 0, 0
            for views, failures in self._batches(epoch, batch_pos):
                batch_pos += 1
                if failures:
                    self._record_failures(failures, step, epoch, batch_pos)
                if distributed.any_true(views is None, self.ctx):
                    continue  # no loadable sample in this batch (on some rank): skipped everywhere
                used += 1
                window.append(views)
                if len(window) < tc.grad_accum:
                    continue
                self._optimizer_step(window, step, total)
                window = []
                step += 1
                if self.ctx.is_main and tc.save_every > 0 and step % tc.save_every == 0 and step < total:
                    _save(self.run_dir / "last.pt", self.model, self.optimizer, self.scaler, step, epoch, batch_pos,
                          self.cfg)
                if self.ctx.is_main and tc.keep_every > 0 and step % tc.keep_every == 0:
                    _save(self.run_dir / f"step_{step}.pt", self.model, self.optimizer, self.scaler, step, epoch,
                          batch_pos, self.cfg)
                if self.parts.validator is not None and tc.val_every > 0 and step % tc.val_every == 0:
                    self._log(step, self.parts.validator(self.model), prefix="val/")
                if step >= total:
                    break
            else:
                if whole_epoch and used == 0:
                    raise DataError(f"{self.cfg.data.root}/{self.cfg.data.split}",
                                    f"no sample of epoch {epoch} could be loaded ({self.bad_samples} failures, "
                                    f"listed in {self.skip_log.csv.path})")
                epoch, batch_pos = epoch + 1, 0
                continue
        return step, epoch, batch_pos

    def _batches(self, epoch: int, start: int):
        """The loader's (views or None, failures) batches; a dead worker becomes a DataError naming the samples."""
        from coopmap.data.dataset import iterate_reporting_worker_death

        return iterate_reporting_worker_death(self.parts.loader, self.parts.dataset,
                                              lambda done: self.parts.sampler.rank_batches(epoch, start + done))

    def _record_failures(self, failures, step: int, epoch: int, batch_pos: int) -> None:
        """Log samples that failed to load: a row each in skipped_samples.csv, one stderr line per sample."""
        for f in failures:
            self.bad_samples += 1
            rec = self.parts.dataset.keys[f.index]
            self.skip_log.write({"step": step + 1, "epoch": epoch, "batch": batch_pos, "scenario": rec.scenario,
                                 "timestamp": rec.timestamp, "ego_id": rec.ego_id, "mode": rec.mode,
                                 "path": f.path, "reason": f.reason})
            if f.index not in self.reported:
                self.reported.add(f.index)
                from tqdm import tqdm

                tqdm.write(f"coopmap train: skipped sample {self.parts.dataset.describe(f.index)}: {f.path}: "
                           f"{f.reason}", file=sys.stderr)

    def _optimizer_step(self, window: list[list[dict]], step: int, total: int) -> None:
        tc = self.cfg.trainer
        t0 = time.perf_counter()
        lr = set_lr(self.optimizer, tc.lr, lr_factor(step, total, tc.warmup_steps, tc.min_lr_ratio))
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        bad_terms: set[str] = set()
        monitors: dict[str, float] = {}
        for views in window:
            views = views_to_device(views, self.ctx.device)
            loss, details, preds = _forward_loss(self.parts, self.net, views, self.autocast)
            if not self.contract_checked:
                check_outputs(views, preds)  # the model honours MapAnything's output contract
                self.contract_checked = True
            if not torch.isfinite(loss):
                bad_terms |= {k for k, v in details.items() if not math.isfinite(v)} or {"loss"}
            else:
                scaled = loss / len(window)
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            for k, v in details.items():
                sums[k] = sums.get(k, 0.0) + v / len(window)
            monitors = self.parts.monitors(views, preds)
        grad_norm = self._unscale_and_clip() if not bad_terms else math.nan
        if not bad_terms and not math.isfinite(grad_norm):
            bad_terms = {"gradient (finite loss, non-finite gradient norm)"}
        if distributed.any_true(bool(bad_terms), self.ctx):
            if self.scaler is not None:
                self.scaler.update()
            self._skip(step, window, bad_terms)
            return
        self.nonfinite_streak = 0
        self._step()
        loss_value = sums.get("loss/total", math.nan)
        self.first_loss = loss_value if self.first_loss is None else self.first_loss
        self.last_loss = loss_value
        row = {"lr": lr, "grad_norm": grad_norm, "step_time": time.perf_counter() - t0, **sums, **monitors,
               "nonfinite_skipped": self.skipped}
        if step % max(tc.log_every, 1) == 0 or step + 1 == total:
            self._log(step + 1, row)
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix(loss=f"{loss_value:.4g}", s_step=f"{row['step_time']:.2f}")

    def _unscale_and_clip(self) -> float:
        """The global gradient norm (before clipping); gradients clipped to trainer.grad_clip."""
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        max_norm = self.cfg.trainer.grad_clip if self.cfg.trainer.grad_clip > 0 else math.inf
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))

    def _step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def _skip(self, step: int, window: list[list[dict]], bad_terms: set[str]) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped += 1
        self.nonfinite_streak += 1
        if self.nonfinite_streak < self.cfg.trainer.max_nonfinite:
            return
        ids = [inst for views in window for inst in views[0].get("instance", [])]
        dump = self.run_dir / "nonfinite_batch.json"
        if self.ctx.is_main:
            dump.write_text(json.dumps({"step": step + 1, "terms": sorted(bad_terms), "instances": ids}, indent=1))
        raise TrainingDiverged(
            f"{self.nonfinite_streak} non-finite losses in a row at step {step + 1} (terms: "
            f"{', '.join(sorted(bad_terms))}); the offending batch's identifiers are in {dump}"
        )

    def _log(self, step: int, row: dict[str, float], prefix: str = "") -> None:
        if not self.ctx.is_main:
            return
        row = {f"{prefix}{k}": v for k, v in row.items()}
        if self.csv_log is not None and not prefix:
            self.csv_log.write({"step": step, **row})
        if prefix and self.val_log is not None:
            self.val_log.write({"step": step, **row})
        self.tb.scalars(step, row)
