"""``coopmap ablate --data ROOT --out DIR [--preset quick|full|micro] [overrides]``."""

from __future__ import annotations

import argparse

from coopmap.ablate.presets import DEFAULT_POSE_NOISE, PRESETS, V2X, V2X_VARIANTS, VARIANTS

DESCRIPTION = f"""The seed plan's validation in one resumable command.

Evaluates the reference rows (the oracle; the oracle with identity poses, with every agent at the ego origin,
with constant train-median depth), the start (the shipped pretrained tiny model, or --start CKPT), caches the
start as the distillation teacher, trains the Stage-2 variants {', '.join(VARIANTS)} from the start once per
seed (and {', '.join(v + V2X for v in V2X_VARIANTS)} with shared V2X poses as model inputs, --pose-noise),
evaluates each in single and coop mode, filters the best variant's clouds, and writes DIR/ablation.csv,
DIR/ablation.md and DIR/verdicts.json: for each improvement against its predecessor, win / loss / no evidence /
inconclusive, from a paired bootstrap over frames per seed and the spread over seeds (docs/ablation.md).
Re-running the same command resumes: finished runs are not retrained.

Presets: {'; '.join(f'{k}: {v.stage2_steps} steps x seeds {list(v.seeds)} at {v.resolution[0]}x{v.resolution[1]}'
                    for k, v in PRESETS.items())}.
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="coopmap ablate", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="an OPV2V(-format) root with train/ and the eval split")
    parser.add_argument("--out", required=True, help="the ablation folder (re-use it to resume)")
    parser.add_argument("--preset", default="quick", choices=list(PRESETS), help="sizes and steps (default quick)")
    parser.add_argument("--eval-split", default="test", help="split to evaluate on (default test)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                        help="training seeds of every variant (default: the preset's; >= 2 for a verdict)")
    parser.add_argument("--start", default=None, metavar="CKPT",
                        help="start weights and teacher (default: the shipped pretrained model, coopmap pretrain)")
    parser.add_argument("--pose-noise", type=float, nargs=2, default=list(DEFAULT_POSE_NOISE), metavar=("M", "DEG"),
                        help="shared V2X pose noise of the *_v2x runs: position std (m) and yaw std (deg); "
                             "default %(default)s; 0 0 is the control")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every training run, e.g. seed=1")
    args = parser.parse_args(argv)
    from coopmap.ablate.pipeline import run_ablation

    result = run_ablation(args.data, args.out, args.preset, args.overrides, args.eval_split, not args.quiet,
                          seeds=args.seeds, start=args.start, pose_noise=args.pose_noise)
    print(result["markdown"])
    print(f"ablation table: {args.out}/ablation.md (csv: ablation.csv)")
    return 0
