"""``coopmap pretrain``: the competent start of the ablation, as pretrained MapAnything is for our users.

1. ``coopmap synth``: many small towns for training (1-2 frames each) and a fresh test split (another seed);
2. trains the tiny model with MapAnything's own loss (points/depth on pixels with depth GT only) on single and
   cooperative samples alternately (``data.mode=mixed``);
3. writes ``tiny_synth.pt`` (weights and architecture only: loads with ``weights_only=True``) and its manifest
   ``tiny_synth.json`` (command, data seeds and sizes, steps, sha256, time, test figures beside the trivial
   references), and checks that it beats the trivial references on single pose_abs_r, single pose_abs_t,
   depth_abs_rel and scale_err (frame by frame: the 95 % bootstrap interval of the paired difference below 0);
4. ``--install`` copies both into the package (``coopmap/pretrained/``): the file the demo starts from.

Re-running the same command resumes: data, training and the references' evaluation are skipped when complete
(the start is always evaluated again); the manifest's ``seconds`` add up every invocation's time per stage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

#: the architecture of the shipped model (the ablation reads it back from the file)
ARCH = {"name": "tiny", "patch_size": 14, "embed_dim": 64, "depth": 4, "num_heads": 4, "mlp_ratio": 4.0,
        "ray_prior_fov_deg": 100.0, "init_scale_m": 10.0}
#: (metric, mode) the start must beat every trivial reference on
CRITERIA = [("pose_abs_r", "single"), ("pose_abs_t", "single"), ("depth_abs_rel", "single"), ("scale_err", "single"),
            ("depth_abs_rel", "coop"), ("scale_err", "coop")]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coopmap pretrain", description=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/pretrain", metavar="DIR", help="work folder (default runs/pretrain)")
    p.add_argument("--steps", type=int, default=5000, help="optimizer steps (default 5000)")
    p.add_argument("--scenarios", type=int, default=96, help="training towns (default 96)")
    p.add_argument("--frames", type=int, default=2, help="frames per training town (default 2)")
    p.add_argument("--test-scenarios", type=int, default=20, help="test towns, another seed (default 20)")
    p.add_argument("--agents", type=int, default=3, help="CAVs per town (default 3)")
    p.add_argument("--resolution", default="112x84", metavar="WxH", help="model input size (default 112x84)")
    p.add_argument("--seed", type=int, default=1000, help="data seed (test split: seed + 1) and training seed")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--install", action="store_true", help="copy the result into the package (coopmap/pretrained)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


class StageClock:
    """Wall seconds per stage, summed over every invocation of a resumed run and kept in ``path`` (JSON), so a
    resumed run reports what the whole computation cost, not the few seconds of skipping finished stages."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
        self._started: dict[str, float] = {}

    def begin(self, stage: str) -> None:
        self._started[stage] = time.perf_counter()

    def end(self, stage: str) -> dict[str, int]:
        """Adds the stage's time, saves, and returns every stage's rounded seconds with their ``total``."""
        from coopmap.evaluation.outputs import atomic_write_text

        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - self._started.pop(stage)
        atomic_write_text(self.path, json.dumps(self.seconds) + "\n")
        total = sum(self.seconds.values())
        return {**{k: round(v) for k, v in self.seconds.items()}, "total": round(total)}

    @contextlib.contextmanager
    def __call__(self, stage: str):
        self.begin(stage)
        yield  # an exception loses only this invocation's time of the stage
        self.end(stage)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _generate(data: Path, args, size: tuple[int, int]) -> None:
    from coopmap.synth.generate import generate

    image = (2 * size[0], 2 * size[1])
    for split, scenarios, frames, seed in (("train", args.scenarios, args.frames, args.seed),
                                           ("test", args.test_scenarios, 1, args.seed + 1)):
        marker = data / f".{split}.done"
        if not marker.exists():
            generate(data, split=split, scenarios=scenarios, agents=args.agents, frames=frames, seed=seed,
                     image_size=image, progress=not args.quiet)
            marker.write_text("ok\n")


def _train(data: Path, run: Path, args, size: tuple[int, int]) -> Path:
    from coopmap.config import compose
    from coopmap.train.loop import train

    cfg = compose("train", [f"data.root={data}", f"data.resolution=[{size[0]},{size[1]}]", "experiment=stage1",
                            "data.mode=mixed", *(f"model.{k}={v}" for k, v in ARCH.items()),
                            f"trainer.max_steps={args.steps}", f"trainer.lr={args.lr}", "trainer.warmup_steps=50",
                            f"trainer.save_every={max(args.steps // 20, 1)}", f"trainer.progress={not args.quiet}",
                            f"seed={args.seed}", f"out_dir={run}"])
    train(cfg)
    return run / "last.pt"


def write_weights(last: Path, out: Path) -> Path:
    """The shipped file: float32 weights and the architecture, nothing else (no optimizer, no pickled objects)."""
    import torch

    from coopmap.train.checkpoint import atomic_torch_save, load_checkpoint

    state = {k: v.float() if v.is_floating_point() else v for k, v in load_checkpoint(last)["model"].items()}
    path = out / "tiny_synth.pt"
    atomic_torch_save({"model": state, "model_config": dict(ARCH)}, path)
    torch.load(path, map_location="cpu", weights_only=True)  # proves the promise of the docstring
    return path


def check_against_references(frames, rows: list[dict]) -> list[dict]:
    """For each criterion: the start's value, the trivial references' values, the 95 % bootstrap interval over the
    test frames of the paired difference (start - reference) and whether it beats them all, i.e. every interval
    lies below 0 (the ablation's rule, :func:`coopmap.ablate.stats.beats_on_every_seed`, with one seed)."""
    from coopmap.ablate.presets import START, trivial_references
    from coopmap.ablate.stats import bootstrap_mean_ci, on_better_side
    from coopmap.ablate.table import reference_differences

    by = {(r["variant"], r["mode"]): r for r in rows}
    out = []
    for metric, mode in CRITERIA:
        refs = {n: by[(f"ref_{n}", mode)][metric] for n in trivial_references(metric, mode)}
        # the start is unseeded: one array of frame differences per reference
        cis = {n: bootstrap_mean_ci(reference_differences(frames, START, f"ref_{n}", metric, mode)[0])
               for n in refs}
        out.append({"metric": metric, "mode": mode, "pretrained": by[(START, mode)][metric], "references": refs,
                    "difference_ci95": {n: list(ci) for n, ci in cis.items()},
                    "beats_all": on_better_side(list(cis.values()), lower_is_better=True)})
    return out


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from coopmap.ablate.pipeline import Ablation
    from coopmap.ablate.presets import REFERENCES, START, AblatePreset
    from coopmap.ablate.table import collect_frames, summary_rows
    from coopmap.errors import ConfigError
    from coopmap.pretrained import NAME, sha256

    try:
        W, H = (int(x) for x in args.resolution.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--resolution must be WxH (e.g. 112x84), got {args.resolution!r}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clock = StageClock(out / "seconds.json")
    with clock("data"):
        _generate(out / "data", args, (W, H))
    with clock("train"):
        weights = write_weights(_train(out / "data", out / "run", args, (W, H)), out)
    clock.begin("evaluation")
    ab = Ablation(str(out / "data"), str(out), AblatePreset(resolution=[W, H], stage2_steps=0, eval_frames=0,
                                                             seeds=(0,)), [], "test", not args.quiet, str(weights))
    median = ab.train_median_depth()
    ab.evaluate_references(median, 0.0, 0.0)
    shutil.rmtree(ab.eval_dir(START), ignore_errors=True)  # the weights may be new: never reuse an old evaluation
    ab.evaluate(START, [*ab.model, f"model.checkpoint={weights}"], ab.eval_dir(START), save_points=False)
    frames = collect_frames(out / "eval", [*(f"ref_{n}" for n in REFERENCES), START], [], [])
    rows = summary_rows(frames, 3)
    checks = check_against_references(frames, rows)
    figures = {f"{r['variant']}/{r['mode']}": {k: r[k] for k in ("depth_abs_rel", "scale_err", "pose_abs_t",
                                                                  "pose_abs_r", "agent_pose_abs_t", "n_frames")}
               for r in rows}
    manifest = {
        "name": NAME, "file": f"{NAME}.pt", "sha256": sha256(weights), "bytes": weights.stat().st_size,
        "command": "coopmap pretrain " + " ".join(argv), "git_commit": _git_commit(), "model_config": ARCH,
        "data": {"scenarios": args.scenarios, "frames": args.frames, "agents": args.agents,
                 "train_seed": args.seed, "test_seed": args.seed + 1, "test_scenarios": args.test_scenarios,
                 "image_size": [2 * W, 2 * H]},
        "training": {"steps": args.steps, "lr": args.lr, "resolution": [W, H], "mode": "mixed",
                     "loss": "MapAnything's (experiment=stage1: points/depth on valid pixels)", "seed": args.seed},
        "seconds": clock.end("evaluation"),
        "test_figures": figures, "train_median_depth_m": median, "criteria": checks,
        "beats_every_trivial_reference": all(c["beats_all"] for c in checks),
    }
    (out / f"{NAME}.json").write_text(json.dumps(manifest, indent=1, allow_nan=True) + "\n")
    print(f"{'metric':<16}{'mode':<8}{'pretrained':>12}  trivial references")
    for c in checks:
        refs = ", ".join(f"{n} {v:.4g} (difference {c['difference_ci95'][n][0]:+.3g}, 95% CI "
                         f"[{c['difference_ci95'][n][1]:+.3g}, {c['difference_ci95'][n][2]:+.3g}])"
                         for n, v in c["references"].items())
        print(f"{c['metric']:<16}{c['mode']:<8}{c['pretrained']:>12.4g}  {refs}  "
              f"{'beats all' if c['beats_all'] else 'DOES NOT beat all'}")
    if args.install:
        from coopmap import pretrained

        dest = Path(pretrained.__file__).parent
        shutil.copy2(weights, dest / f"{NAME}.pt")
        shutil.copy2(out / f"{NAME}.json", dest / f"{NAME}.json")
        print(f"installed into {dest}")
    print(f"pretrain: {manifest['seconds']['total'] / 60:.1f} min over all invocations; weights {weights} "
          f"({manifest['bytes']} bytes)")
    return 0 if manifest["beats_every_trivial_reference"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
