"""``run_ablation``: the seed plan's validation protocol as one resumable pipeline.

1. the reference rows: the oracle, and the oracle with one part trivialised (identity poses, every agent at the
   ego origin, constant train-median depth), evaluated like any model;
2. the start (the shipped pretrained tiny model unless ``start`` names another checkpoint), evaluated, and its
   teacher cache (the frozen "pretrained" model of scale distillation);
3. for every seed, the Stage-2 variants (``stage2_naive``, ``stage2`` = MapAnything's own loss, then each
   improvement on top of its predecessor), all from the start's weights, each evaluated in single and coop mode;
4. ablation.csv / ablation.md / verdicts.json: seed means and spreads beside the references, and for each
   improvement a verdict against its predecessor (:mod:`coopmap.ablate.stats`);
5. filtering of the best variant's clouds (lowest coop Chamfer, seed 0).

Every step is skipped when its output is complete, so re-running the same command after an interruption continues
where it stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from coopmap.ablate.presets import (
    DEFAULT_POSE_NOISE,
    PRESETS,
    REFERENCES,
    START,
    V2X,
    V2X_VARIANTS,
    VARIANTS,
    AblatePreset,
    pose_input_overrides,
)
from coopmap.ablate.table import collect_frames, judge_all, summary_rows, write_outputs
from coopmap.config import compose
from coopmap.errors import CheckpointError, ConfigError, CoopmapError
from coopmap.evaluation.outputs import atomic_write_text

#: model fields a start checkpoint's config fixes (the architecture); the ablation builds every model with them.
ARCH_FIELDS = ("name", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "ray_prior_fov_deg",
               "init_scale_m")


def _say(msg: str) -> None:
    print(f"[ablate] {msg}", flush=True)


def _finished(run_dir: Path, steps: int) -> bool:
    from coopmap.train.checkpoint import load_checkpoint

    last = run_dir / "last.pt"
    if not last.exists():
        return False
    try:
        return int(load_checkpoint(last)["step"]) >= steps
    except CheckpointError:
        return False


def start_model_overrides(checkpoint: str) -> list[str]:
    """``model.<field>=<value>`` overrides of the architecture recorded in a start checkpoint (ours: its
    ``config.model``; the shipped pretrained file: its ``model_config``)."""
    from coopmap.train.checkpoint import load_checkpoint

    ck = load_checkpoint(checkpoint)
    model = ck.get("model_config") or (ck.get("config") or {}).get("model")
    if not isinstance(model, dict):
        raise CheckpointError(f"{checkpoint}: records no model config (model_config or config.model), so the "
                              "ablation cannot build the architecture it was trained with")
    return [f"model.{k}={model[k]}" for k in ARCH_FIELDS if k in model]


class Ablation:
    """The paths and shared overrides of one ablation folder."""

    def __init__(self, data_root: str, out_dir: str, preset: AblatePreset, overrides: Sequence[str],
                 eval_split: str, progress: bool, start: str):
        self.root, self.out, self.preset = str(data_root), Path(out_dir), preset
        self.user = list(overrides)
        self.eval_split, self.progress = eval_split, progress
        self.start = start
        W, H = preset.resolution
        self.data = [f"data.root={self.root}", f"data.resolution=[{W},{H}]"]
        self.model = start_model_overrides(start)
        # data./model. overrides must reach evaluation and the teacher too, or they would build other models
        self.shared = [o for o in self.user if o.split("=")[0].lstrip("+").startswith(("data.", "model."))]
        self.timings: dict[str, float] = {}

    def run_dir(self, variant: str, seed: int) -> Path:
        return self.out / "runs" / variant / f"s{seed}"

    def eval_dir(self, name: str, seed: int | None = None) -> Path:
        return self.out / "eval" / name / (f"s{seed}" if seed is not None else "")

    def train(self, variant: str, seed: int, cache: Path, extra_overrides: Sequence[str] = ()) -> Path:
        """Train ``variant`` (an experiment preset, or one with the V2X suffix and ``extra_overrides``) once."""
        from coopmap.train.loop import train

        run, steps = self.run_dir(variant, seed), self.preset.stage2_steps
        experiment = variant.removesuffix(V2X)
        if _finished(run, steps):
            _say(f"{variant} seed {seed}: already trained ({steps} steps), skipped")
            return run / "last.pt"
        _say(f"{variant} seed {seed}: training {steps} steps -> {run}")
        extra = [f"model.checkpoint={self.start}"]
        if "distill" in experiment or experiment == "stage2_full":
            extra += [f"distill.teacher_cache={cache}", f"distill.teacher_checkpoint={self.start}"]
        cfg = compose("train", [*self.data, *self.model, f"experiment={experiment}", f"trainer.max_steps={steps}",
                                f"trainer.lr={self.preset.lr}", f"trainer.warmup_steps={self.preset.warmup_steps}",
                                f"trainer.save_every={max(steps // 4, 1)}", f"trainer.progress={self.progress}",
                                f"out_dir={run}", f"seed={seed}", *extra, *extra_overrides, *self.user])
        t0 = time.perf_counter()
        result = train(cfg)
        self.timings[f"train_{variant}_s{seed}"] = time.perf_counter() - t0
        _say(f"{variant} seed {seed}: loss {result['first_loss']:.4g} -> {result['last_loss']:.4g}")
        return run / "last.pt"

    def teacher_cache(self) -> Path:
        from coopmap.models.cli_teacher_cache import build_teacher_cache
        from coopmap.models.teacher_cache import TeacherCache

        path = self.out / "teacher_cache"
        cfg = compose("teacher_cache", [*self.data, *self.model, "data.split=train", "data.mode=coop",
                                        f"model.checkpoint={self.start}", f"out_dir={path}", *self.shared])
        if (path / "manifest.json").exists():
            try:
                TeacherCache(path, model_cfg=cfg.model, data_cfg=cfg.data)
                _say("teacher cache: complete and matching, skipped")
                return path
            except CoopmapError as err:
                _say(f"teacher cache: rebuilding ({err})")
                shutil.rmtree(path)
        t0 = time.perf_counter()
        build_teacher_cache(cfg, progress=self.progress)
        self.timings["teacher_cache"] = time.perf_counter() - t0
        return path

    def evaluate(self, name: str, model: list[str], out: Path, save_points: bool) -> Path:
        from coopmap.evaluation.runner import evaluate

        cfg = compose("eval", [*self.data, *model, f"data.split={self.eval_split}", f"out_dir={out}",
                               "eval.modes=[single,coop]", f"eval.save_points={str(save_points).lower()}",
                               f"eval.max_frames={self.preset.eval_frames}", f"eval.worst_k={self.preset.worst_k}",
                               f"eval.progress={self.progress}", *self.shared])
        t0 = time.perf_counter()
        result = evaluate(cfg)
        self.timings[f"eval_{name}"] = time.perf_counter() - t0
        _say(f"{name}: evaluated {result['rows']} rows ({result['skipped']} skipped)")
        return out

    def evaluate_references(self, median: float, pos: float, yaw: float) -> None:
        """The oracle rows of presets.REFERENCES (each evaluated once; resumable like any evaluation)."""
        for name, knobs in REFERENCES.items():
            self.evaluate(f"ref_{name}", ["model=oracle", *(k.format(median=median, pos=pos, yaw=yaw) for k in knobs)],
                          self.eval_dir(f"ref_{name}"), save_points=False)

    def train_median_depth(self) -> float:
        """Median LiDAR depth (metres) of the training split: the constant-depth reference's value (cached)."""
        path = self.out / "train_median_depth.json"
        if path.exists():
            return float(json.loads(path.read_text())["median_depth_m"])
        import numpy as np

        from coopmap.data.dataset import make_loader

        cfg = compose("teacher_cache", [*self.data, "data.split=train", "data.mode=single", *self.shared])
        depths, frames = [], 0
        for views in make_loader(cfg.data, "train", shuffle=False, seed=0):
            for v in views:
                depths.append(v["depthmap"][v["valid_mask"]].reshape(-1).numpy())
            frames += 1
            if frames >= self.preset.median_frames:
                break
        if not depths or not sum(len(d) for d in depths):
            raise CoopmapError(f"{self.root}/train: no depth ground truth to take the median of")
        median = float(np.median(np.concatenate(depths)))
        atomic_write_text(path, json.dumps({"median_depth_m": median, "frames": frames}))
        return median

    def filter_best(self, rows: list[dict], seed: int) -> str | None:
        """Filter the clouds of the variant with the lowest mean coop Chamfer, as saved by its run ``seed``."""
        coop = [r for r in rows if r["mode"] == "coop" and r["variant"] in VARIANTS]
        if not coop:
            return None
        best = min(coop, key=lambda r: (r["chamfer"] != r["chamfer"], r["chamfer"]))["variant"]
        from coopmap.filtering.cli import main as filter_main

        _say(f"filtering the best variant's clouds ({best} seed {seed}, lowest coop Chamfer)")
        t0 = time.perf_counter()
        code = filter_main(["--pred", str(self.eval_dir(best, seed)), "--out", str(self.out / "filter" / best / f"s{seed}"),
                            *([] if self.progress else ["--no-progress"])])
        self.timings["filter"] = time.perf_counter() - t0
        if code not in (0, None):
            raise CoopmapError(f"filtering {best} failed with exit code {code}")
        return best


def _same_pose_noise(out: Path, pos: float, yaw: float) -> None:
    """Record the V2X runs' pose noise in the folder; refuse to resume them with another one (they would mix)."""
    path, now = out / "pose_noise.json", {"pos_std_m": pos, "yaw_std_deg": yaw}
    if path.exists():
        was = json.loads(path.read_text())
        if was != now:
            raise ConfigError(f"{out}: its V2X runs used --pose-noise {was['pos_std_m']:g} {was['yaw_std_deg']:g}; "
                              f"use another --out for {pos:g} {yaw:g}")
    else:
        atomic_write_text(path, json.dumps(now))


def default_start() -> str:
    """The shipped pretrained tiny model (``coopmap pretrain``; docs/ablation.md)."""
    from coopmap.pretrained import pretrained_path

    return str(pretrained_path())


def run_ablation(data_root: str, out_dir: str, preset: str = "quick", overrides: Sequence[str] = (),
                 eval_split: str = "test", progress: bool = True, seeds: Sequence[int] | None = None,
                 start: str | None = None, pose_noise: Sequence[float] = DEFAULT_POSE_NOISE) -> dict:
    """Run (or resume) the whole protocol; returns {"rows", "verdicts", "markdown", "best", "out_dir"}.

    ``pose_noise``: (position std m, yaw std deg) of the shared poses of the V2X runs ((0, 0): the control).
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown ablation preset {preset!r}; choose one of {', '.join(PRESETS)}")
    for split in ("train", eval_split):
        if not (Path(data_root) / split).is_dir():
            raise ConfigError(f"{Path(data_root) / split}: the ablation needs a '{split}' split under --data")
    p = PRESETS[preset]
    seeds = tuple(p.seeds if seeds is None else seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must be distinct integers, got {list(seeds)}")
    ab = Ablation(data_root, out_dir, p, overrides, eval_split, progress, start or default_start())
    ab.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    pos, yaw = (float(x) for x in pose_noise)
    if pos < 0 or yaw < 0:
        raise ConfigError(f"--pose-noise must be two stds >= 0 (metres, degrees), got {list(pose_noise)}")
    v2x = pose_input_overrides(pos, yaw)
    _same_pose_noise(ab.out, pos, yaw)
    median = ab.train_median_depth()
    ab.evaluate_references(median, pos, yaw)
    ab.evaluate(START, [*ab.model, f"model.checkpoint={ab.start}"], ab.eval_dir(START), save_points=False)
    cache = ab.teacher_cache()
    runs = [(v, ()) for v in VARIANTS] + [(v + V2X, v2x) for v in V2X_VARIANTS]
    for seed in seeds:
        for variant, extra in runs:
            ckpt = ab.train(variant, seed, cache, extra)
            ab.evaluate(f"{variant}_s{seed}", [*ab.model, *extra, f"model.checkpoint={ckpt}"],
                        ab.eval_dir(variant, seed), save_points=seed == seeds[0] and not extra)
    frames = collect_frames(ab.out / "eval", [f"ref_{n}" for n in REFERENCES] + [START], [v for v, _ in runs], seeds)
    rows = summary_rows(frames, p.worst_k)
    judged = judge_all(frames, rows)
    best = ab.filter_best(rows, seeds[0])
    ab.timings["total_this_call"] = time.perf_counter() - t_start
    header = [f"# Ablation ({preset} preset)", "",
              f"Data: `{data_root}` (train on `train`, evaluate on `{eval_split}`); resolution {p.resolution}. "
              f"Every Stage-2 variant: {p.stage2_steps} steps from `{ab.start}` (also the distillation teacher), "
              f"seeds {list(seeds)}. `*{V2X}` runs: shared agent poses with {pos:g} m / {yaw:g} deg noise as pose "
              f"inputs. References: the oracle with knobs (constant depth = train median {median:.3g} m). "
              f"Best variant (lowest coop Chamfer), filtered: {best}."]
    md = write_outputs(ab.out, rows, judged, header, seeds)
    atomic_write_text(ab.out / "timings.json", json.dumps(ab.timings, indent=1))
    return {"rows": rows, "verdicts": judged, "markdown": md, "best": best, "out_dir": str(ab.out)}
