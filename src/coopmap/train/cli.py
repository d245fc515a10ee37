"""``coopmap train [overrides]`` (also under ``torchrun --nproc_per_node N -m coopmap train ...``)."""

from __future__ import annotations

from omegaconf import DictConfig

from coopmap.hydra_cli import run_with_overrides

DESCRIPTION = """Train a model on an OPV2V(-format) tree.

Run folder (out_dir, default runs/<experiment>/<time>): last.pt, step_N.pt, train_log.csv, tb/ (TensorBoard),
config.yaml. trainer.resume=auto continues from out_dir/last.pt after an interruption.

Examples:
  coopmap train data.root=DATA experiment=stage1 out_dir=runs/s1
  coopmap train data.root=DATA experiment=stage2_full model.checkpoint=runs/s1/last.pt \\
      distill.teacher_cache=cache/ out_dir=runs/s2_full
  torchrun --nproc_per_node 8 -m coopmap train data.root=DATA experiment=stage2_full ...
"""


def _run(cfg: DictConfig) -> None:
    from coopmap.train.loop import train

    result = train(cfg)
    if result.get("is_main", True):
        print(f"trained {result['steps']} steps; loss {result['first_loss']} -> {result['last_loss']}; "
              f"skipped non-finite steps: {result['nonfinite_skipped']}; samples that failed to load: "
              f"{result['skipped_samples']}; run folder: {result['run_dir']}")


def main(argv: list[str]) -> int:
    return run_with_overrides("train", "train", DESCRIPTION, argv, _run)
