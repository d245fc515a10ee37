"""``run_ablation``: the seed plan's validation protocol as one resumable pipeline.

1. Stage 1 (single-vehicle fine-tune) from the model's starting weights;
2. the teacher cache of the Stage-1 model (the frozen "pretrained" model of scale distillation);
3. the Stage-2 variants, all from the same Stage-1 weights and seed;
4. evaluation of Stage 1 and every variant in single and coop mode, with point-cloud metrics;
5. filtering of the best variant's clouds (lowest coop Chamfer);
6. ablation.csv / ablation.md / verdicts.json.

Every step is skipped when its output is complete (a finished run is not retrained; evaluation and filtering
resume on their own), so re-running the same command after an interruption continues where it stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from coopmap.ablate.presets import PRESETS, REFERENCE, VARIANTS, AblatePreset
from coopmap.ablate.table import variant_rows, verdicts, with_deltas, write_outputs
from coopmap.config import compose
from coopmap.errors import CheckpointError, ConfigError, CoopmapError
from coopmap.evaluation.outputs import atomic_write_text


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


class Ablation:
    """The paths and shared overrides of one ablation folder."""

    def __init__(self, data_root: str, out_dir: str, preset: AblatePreset, overrides: Sequence[str],
                 eval_split: str, progress: bool):
        self.root, self.out, self.preset = str(data_root), Path(out_dir), preset
        self.user = list(overrides)
        self.eval_split, self.progress = eval_split, progress
        W, H = preset.resolution
        self.data = [f"data.root={self.root}", f"data.resolution=[{W},{H}]"]
        self.model = [f"model.{k}={v}" for k, v in preset.model.items()]
        # data./model. overrides must reach evaluation and the teacher too, or they would build other models
        self.shared = [o for o in self.user if o.split("=")[0].lstrip("+").startswith(("data.", "model."))]
        self.timings: dict[str, float] = {}

    def run_dir(self, name: str) -> Path:
        return self.out / "runs" / name

    def _train(self, name: str, steps: int, extra: list[str]) -> None:
        from coopmap.train.loop import train

        run = self.run_dir(name)
        if _finished(run, steps):
            _say(f"{name}: already trained ({steps} steps), skipped")
            return
        _say(f"{name}: training {steps} steps -> {run}")
        cfg = compose("train", [*self.data, *self.model, f"experiment={name}", f"trainer.max_steps={steps}",
                                f"trainer.lr={self.preset.lr}", f"trainer.warmup_steps={self.preset.warmup_steps}",
                                f"trainer.save_every={max(steps // 4, 1)}", f"trainer.progress={self.progress}",
                                f"out_dir={run}", *extra, *self.user])
        t0 = time.perf_counter()
        result = train(cfg)
        self.timings[f"train_{name}"] = time.perf_counter() - t0
        _say(f"{name}: loss {result['first_loss']:.4g} -> {result['last_loss']:.4g}")

    def teacher_cache(self) -> Path:
        from coopmap.models.cli_teacher_cache import build_teacher_cache
        from coopmap.models.teacher_cache import TeacherCache

        path, ckpt = self.out / "teacher_cache", self.run_dir(REFERENCE) / "last.pt"
        cfg = compose("teacher_cache", [*self.data, *self.model, "data.split=train", "data.mode=coop",
                                        f"model.checkpoint={ckpt}", f"out_dir={path}", *self.shared])
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

    def evaluate(self, name: str) -> Path:
        from coopmap.evaluation.runner import evaluate

        out = self.out / "eval" / name
        cfg = compose("eval", [*self.data, *self.model, f"data.split={self.eval_split}",
                               f"model.checkpoint={self.run_dir(name) / 'last.pt'}", f"out_dir={out}",
                               "eval.modes=[single,coop]", "eval.save_points=true",
                               f"eval.max_frames={self.preset.eval_frames}", f"eval.worst_k={self.preset.worst_k}",
                               f"eval.progress={self.progress}", *self.shared])
        t0 = time.perf_counter()
        result = evaluate(cfg)
        self.timings[f"eval_{name}"] = time.perf_counter() - t0
        _say(f"{name}: evaluated {result['rows']} rows ({result['skipped']} skipped)")
        return out

    def filter_best(self, rows: list[dict]) -> str | None:
        coop = [r for r in rows if r["mode"] == "coop" and r["variant"] in VARIANTS]
        if not coop:
            return None
        best = min(coop, key=lambda r: (r["chamfer"] != r["chamfer"], r["chamfer"]))["variant"]
        from coopmap.filtering.cli import main as filter_main

        _say(f"filtering the best variant's clouds ({best}, lowest coop Chamfer)")
        t0 = time.perf_counter()
        code = filter_main(["--pred", str(self.out / "eval" / best), "--out", str(self.out / "filter" / best),
                            *([] if self.progress else ["--no-progress"])])
        self.timings["filter"] = time.perf_counter() - t0
        if code not in (0, None):
            raise CoopmapError(f"filtering {best} failed with exit code {code}")
        return best


def run_ablation(data_root: str, out_dir: str, preset: str = "quick", overrides: Sequence[str] = (),
                 eval_split: str = "test", progress: bool = True) -> dict:
    """Run (or resume) the whole protocol; returns {"rows", "verdicts", "markdown", "best", "out_dir"}."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown ablation preset {preset!r}; choose one of {', '.join(PRESETS)}")
    for split in ("train", eval_split):
        if not (Path(data_root) / split).is_dir():
            raise ConfigError(f"{Path(data_root) / split}: the ablation needs a '{split}' split under --data")
    ab = Ablation(data_root, out_dir, PRESETS[preset], overrides, eval_split, progress)
    ab.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    p = ab.preset
    ab._train(REFERENCE, p.stage1_steps, [])
    stage1 = str(ab.run_dir(REFERENCE) / "last.pt")
    cache = ab.teacher_cache()
    for variant in VARIANTS:
        extra = [f"model.checkpoint={stage1}"]
        if "distill" in variant or variant == "stage2_full":
            extra += [f"distill.teacher_cache={cache}", f"distill.teacher_checkpoint={stage1}"]
        ab._train(variant, p.stage2_steps, extra)
    rows: list[dict] = []
    for name in [REFERENCE, *VARIANTS]:
        rows += variant_rows(name, ab.evaluate(name), p.worst_k)
    rows = with_deltas(rows)
    best = ab.filter_best(rows)
    judged = verdicts(rows)
    ab.timings["total_this_call"] = time.perf_counter() - start
    header = [f"# Ablation ({preset} preset)", "",
              f"Data: `{data_root}` (train on `train`, evaluate on `{eval_split}`); resolution {p.resolution}; "
              f"Stage 1: {p.stage1_steps} steps; each Stage-2 variant: {p.stage2_steps} steps from the Stage-1 "
              f"weights, same seed. Best variant (lowest coop Chamfer), filtered: {best}."]
    md = write_outputs(ab.out, rows, judged, header)
    atomic_write_text(ab.out / "timings.json", json.dumps(ab.timings, indent=1))
    return {"rows": rows, "verdicts": judged, "markdown": md, "best": best, "out_dir": str(ab.out)}
