"""``coopmap eval [overrides]``."""

from __future__ import annotations

import json

from omegaconf import DictConfig

from coopmap.hydra_cli import run_with_overrides

DESCRIPTION = """Evaluate a model frame by frame, single-vehicle and cooperative.

Writes into out_dir: coop_metrics.csv (one row per frame and mode; status = ok or 'skipped: reason'),
summary.json (per mode mean / median / p90 of every metric, counts), worst_frames.csv (top eval.worst_k frames by
pose_abs_t, scale_err, chamfer) and, with eval.save_points=true, points/<mode>/<scenario>_<timestamp>_<ego>.npz.
Re-running into the same out_dir resumes (finished frames are not recomputed). Metric definitions: docs/metrics.md.

Examples:
  coopmap eval data.root=DATA data.split=test model=tiny model.checkpoint=RUN/last.pt out_dir=OUT
  coopmap eval data.root=DATA model=oracle model.scale=1.25 eval.modes=[coop] out_dir=OUT
"""


def _run(cfg: DictConfig) -> None:
    from coopmap.evaluation.runner import evaluate

    result = evaluate(cfg)
    if "summary" not in result:
        return
    print(f"evaluated {result['rows']} frame-mode rows ({result['ok']} ok, {result['skipped']} skipped) "
          f"into {result['out_dir']}")
    for mode, stats in result["summary"].items():
        picks = {k: stats.get(f"{k}/mean") for k in ("depth_mae", "pose_abs_t", "scale_err", "chamfer", "bev_iou")}
        print(f"  {mode}: " + json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in picks.items()}))


def main(argv: list[str]) -> int:
    return run_with_overrides("eval", "eval", DESCRIPTION, argv, _run)
