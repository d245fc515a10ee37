"""``coopmap check-mapanything``: everything coopmap needs from the installed MapAnything, checked in a minute.

Builds the configured model (``model.*`` overrides; default ``model.pretrained``) or, with ``--small``, a small
random one from their own Hydra configs (CroCo encoder, narrow widths: :data:`SMALL_OVERRIDES`), then on one
synthetic sample (a one-car scene written by ``coopmap.synth``): a forward, ``check_outputs``, one training step with
our criterion, one with theirs (their ``configs/loss/overall_loss.yaml`` train criterion, built from its classes),
our checkpoint out (loaded strictly by their model) and their checkpoint layout in (pickled args, as a start).
Prints a table and the MapAnything version / commit it checked; exit status 0 when every step passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from coopmap.errors import ConfigError

#: a small random MapAnything from their configs (their keys; checked against their v1.1 configs, commit f7ebafb).
SMALL_OVERRIDES = [
    "machine=default", "model=mapanything", "model/encoder=croco_512", "model/info_sharing=aat_ifr_24_layers",
    "machine.root_uniception_pretrained_checkpoints_dir=/nonexistent", "model.encoder.pretrained_checkpoint_path=null",
    "+model.encoder.enc_embed_dim=64", "+model.encoder.enc_depth=2", "+model.encoder.enc_num_heads=2",
    "model.info_sharing.module_args.depth=4", "+model.info_sharing.module_args.dim=64",
    "+model.info_sharing.module_args.num_heads=2", "model.info_sharing.module_args.indices=[0,1]",
    "model.pred_head.feature_head.feature_dim=32",
    "+model.task.ray_dirs_encoder_config.intermediate_dims=[32,48,64]",
    "+model.task.depth_encoder_config.intermediate_dims=[32,48,64]",
]


def mapanything_provenance() -> str:
    """``mapanything <version> (commit <sha>, <source folder>)`` of the installed package."""
    import json
    from importlib import metadata

    import mapanything

    folder = Path(mapanything.__file__).parent
    try:
        dist = metadata.distribution("mapanything")
        version, direct = dist.version, json.loads(dist.read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        version, direct = "?", {}
    commit = direct.get("vcs_info", {}).get("commit_id")
    if commit is None:
        try:
            commit = subprocess.run(["git", "-C", str(folder.parent), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return f"mapanything {version} (commit {commit or 'unknown: not a git checkout'}, {folder})"


def their_configs_dir(given: str | None) -> Path:
    """Their ``configs/`` folder: ``--configs`` or beside the installed package (a clone installed with -e)."""
    if given:
        return Path(given)
    import mapanything

    guess = Path(mapanything.__file__).parent.parent / "configs"
    if not (guess / "train.yaml").is_file():
        raise ConfigError(f"--small needs MapAnything's configs folder; none beside the installed package ({guess}): "
                          "pass --configs <their clone>/configs")
    return guess


def their_criterion() -> Any:
    """Their ``overall_loss.yaml`` train criterion, from the classes of ``mapanything.train.losses``."""
    L = importlib.import_module("mapanything.train.losses")
    geometry = L.FactoredGeometryScaleRegr3DPlusNormalGMLoss(
        L.RobustRegressionLoss(alpha=0.5, scaling_c=0.05), norm_mode="avg_dis",
        depth_type_for_loss="depth_along_ray", loss_in_log=True, flatten_across_image_only=True,
        compute_pairwise_relative_pose_loss=False, compute_world_frame_points_loss=True,
        apply_normal_and_gm_loss_to_synthetic_data_only=True, normal_loss_weight=3.0, gm_loss_weight=3.0)
    conf = L.ConfAndExcludeTopNPercentPixelLoss(geometry, conf_alpha=0.2, top_n_percent=5, apply_to_real_data_only=True,
                                                conf_loss_set_indices=[0], exclude_loss_set_indices=[1, 2])
    return conf + 0.3 * L.NonAmbiguousMaskLoss(L.BCELoss())


def synthetic_sample(folder: str, patch: int, norm_type: str) -> list[dict]:
    """One batched single-car sample (4 views) of a scene written by ``coopmap.synth``, at 8x6 patches."""
    from coopmap.data.config import DataConfig
    from coopmap.data.dataset import ViewsDataset, collate_views
    from coopmap.synth.generate import generate

    generate(folder, split="train", scenarios=1, agents=1, frames=1, seed=0, image_size=(160, 120), progress=False)
    cfg = DataConfig(root=folder, split="train", mode="single", resolution=[8 * patch, 6 * patch], patch_size=patch,
                     norm_type=norm_type, cache_index=False)
    return collate_views([ViewsDataset(cfg)[0]])


def _train_step(model, views, loss_fn) -> str:
    from coopmap.train.config import TrainerConfig
    from coopmap.train.optim import build_optimizer

    opt = build_optimizer(model, TrainerConfig(lr=1e-4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    preds = [{k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in p.items()}
             for p in model(views)]
    loss, details = loss_fn(views, preds)
    if not torch.isfinite(loss):
        raise ValueError(f"non-finite loss {float(loss)} (terms {details})")
    opt.zero_grad()
    loss.backward()
    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    opt.step()
    changed = sum(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    if not changed or not torch.isfinite(torch.tensor(norm)):
        raise ValueError(f"the step changed {changed} tensors, gradient norm {norm}")
    return f"loss {loss.item():.4g}, grad norm {norm:.3g}, {changed} tensors updated"


def _count_equal(net: torch.nn.Module, reference: dict[str, torch.Tensor]) -> int:
    own = net.state_dict()
    return sum(k in own and torch.equal(own[k], v) for k, v in reference.items())


def _checkpoint_out(model, build, cfg, folder: str) -> str:
    """Our export, loaded strictly by their model; with their config tree also through their own loader
    (``model.model_config.pretrained_checkpoint_path``, which loads strictly at construction)."""
    from coopmap.models.export import export_model

    out = os.path.join(folder, "mapanything.pth")
    export_model(model, out, step=1, source="check-mapanything")
    own = model.model.state_dict()
    fresh = build().model
    result = fresh.load_state_dict(torch.load(out, map_location="cpu", weights_only=True)["model"], strict=True)
    if _count_equal(fresh, own) != len(own) or result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{_count_equal(fresh, own)}/{len(own)} tensors equal after their strict load_state_dict")
    detail = f"{len(own)} tensors; their strict load_state_dict: all equal"
    if cfg.hydra_config:
        from coopmap.models.mapanything import import_mapanything
        from coopmap.models.mapanything_hydra import build_from_their_config

        overrides = [*cfg.hydra_overrides, f"model.model_config.pretrained_checkpoint_path={out}"]
        theirs = build_from_their_config(import_mapanything(), cfg.hydra_config, overrides)
        if _count_equal(theirs, own) != len(own):
            raise ValueError(f"their pretrained_checkpoint_path loader: {_count_equal(theirs, own)}/{len(own)} equal")
        detail += "; their pretrained_checkpoint_path loader: all equal"
    return detail


def _their_args(cfg):
    """Their ``args``: the composed run config when their config tree is used, else a small DictConfig."""
    from omegaconf import OmegaConf

    if cfg.hydra_config and Path(cfg.hydra_config).is_dir():
        from coopmap.models.mapanything_hydra import compose_their_config

        return compose_their_config(cfg.hydra_config, cfg.hydra_overrides)
    return OmegaConf.create({"model": {"model_str": "mapanything"}, "epoch": 1, "output_dir": "${hydra:run.dir}"})


def _checkpoint_in(model, build_with, cfg, folder: str) -> str:
    path = os.path.join(folder, "checkpoint-last.pth")
    args = _their_args(cfg)
    net = model.model
    torch.save({"model": net.state_dict(), "optimizer": {}, "scaler": {}, "args": args, "epoch": 1}, path)
    own = net.state_dict()
    equal = _count_equal(build_with(path).model, own)
    if equal != len(own):
        raise ValueError(f"{equal}/{len(own)} tensors equal")
    return f"their layout (pickled OmegaConf args) as model.checkpoint: {equal}/{len(own)} tensors equal"


class _Checks:
    """The steps of one check run; each returns its table detail or raises (the row then says FAIL)."""

    def __init__(self, model_cfg, small: bool, configs: str | None, folder: str):
        from coopmap.models.factory import as_model_config

        self.cfg = as_model_config(model_cfg)
        self.cfg.name = "mapanything"
        self.small, self.configs, self.folder = small, configs, folder
        self.state: dict[str, Any] = {}

    def needs(self, *keys: str) -> None:
        missing = [k for k in keys if k not in self.state]
        if missing:
            raise RuntimeError(f"skipped: an earlier step failed ({', '.join(missing)})")

    def build(self, checkpoint: str | None = None):
        from coopmap.models.factory import build_model

        cfg = copy.deepcopy(self.cfg)
        cfg.checkpoint = checkpoint
        return build_model(cfg)

    def import_(self) -> str:
        from coopmap.models.mapanything import import_mapanything

        import_mapanything()
        return mapanything_provenance()

    def model(self) -> str:
        if self.small:
            self.cfg.hydra_config = str(their_configs_dir(self.configs))
            self.cfg.hydra_overrides = list(SMALL_OVERRIDES)
        torch.manual_seed(0)
        self.state["model"] = model = self.build()
        n = sum(p.numel() for p in model.parameters())
        return f"{type(model.model).__name__}, {n / 1e6:.2f} M parameters, patch {model.patch_size}, {model.data_norm_type}"

    def sample(self) -> str:
        self.needs("model")
        model = self.state["model"]
        self.state["views"] = views = synthetic_sample(os.path.join(self.folder, "synth"), model.patch_size or 14,
                                                       model.data_norm_type)
        H, W = views[0]["img"].shape[-2:]
        return f"{len(views)} views {W}x{H} (one car, coopmap.synth)"

    def forward(self) -> str:
        self.needs("views")
        with torch.no_grad():
            self.state["preds"] = preds = self.state["model"](self.state["views"])
        return f"{len(preds)} view outputs, keys {', '.join(sorted(preds[0]))}"

    def contract(self) -> str:
        from coopmap.models.contract import check_outputs

        self.needs("preds")
        check_outputs(self.state["views"], self.state["preds"])
        return "outputs honour the contract (docs/models.md section 1)"

    def ours(self) -> str:
        from coopmap.losses.build import build_criterion

        self.needs("views")
        return _train_step(self.state["model"], self.state["views"], build_criterion({}))

    def theirs(self) -> str:
        self.needs("views")
        crit = their_criterion()
        return _train_step(self.state["model"], self.state["views"], lambda v, p: crit(v, p))

    def out(self) -> str:
        self.needs("model")
        return _checkpoint_out(self.state["model"], self.build, self.cfg, self.folder)

    def in_(self) -> str:
        self.needs("model")
        return _checkpoint_in(self.state["model"], self.build, self.cfg, self.folder)

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        return [("import", self.import_), ("build model", self.model), ("synthetic sample", self.sample),
                ("forward", self.forward), ("check_outputs", self.contract), ("train step, our criterion", self.ours),
                ("train step, their criterion", self.theirs), ("checkpoint out", self.out),
                ("checkpoint in", self.in_)]


def run_checks(model_cfg, small: bool, configs: str | None) -> tuple[list[tuple[str, bool, float, str]], str]:
    """Run every step; returns the table rows (step, ok, seconds, detail) and the provenance line."""
    rows: list[tuple[str, bool, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="coopmap_check_") as folder:
        for name, fn in _Checks(model_cfg, small, configs, folder).steps():
            t0 = time.perf_counter()
            try:
                detail, ok = fn(), True
            except Exception as err:  # a check: every failure is a row, not a traceback
                detail, ok = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}", False
            rows.append((name, ok, time.perf_counter() - t0, detail))
    return rows, rows[0][3] if rows[0][1] else "mapanything: not importable"


def format_table(rows: list[tuple[str, bool, float, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    lines = [f"{'step':<{width}}  result  time s  detail", "-" * (width + 24)]
    lines += [f"{name:<{width}}  {'ok' if ok else 'FAIL':<6}  {sec:6.1f}  {detail}" for name, ok, sec, detail in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="coopmap check-mapanything",
        description="Check the installed MapAnything against everything coopmap needs (build, forward, contract, a "
                    "training step with our and with their criterion, checkpoints out and in) on one synthetic "
                    "sample, before spending GPU days. Exit 0 when every step passes.",
    )
    parser.add_argument("--small", action="store_true",
                        help="a small random model from their configs (CroCo encoder, narrow) instead of model.*")
    parser.add_argument("--configs", help="their configs/ folder (default: beside the installed package)")
    parser.add_argument("overrides", nargs="*", help="model overrides, e.g. model.pretrained=DIR or "
                                                     "model.hydra_config=<their configs> model.hydra_overrides=[...]")
    args = parser.parse_args(argv)
    from coopmap.config import compose

    model_cfg = compose("train", ["data.root=unused", "model=mapanything", *args.overrides]).model
    rows, provenance = run_checks(model_cfg, args.small, args.configs)
    print(f"coopmap check-mapanything: {provenance}")
    print(format_table(rows))
    failed = [r[0] for r in rows if not r[1]]
    print(f"check-mapanything: {len(rows) - len(failed)} of {len(rows)} steps passed"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
