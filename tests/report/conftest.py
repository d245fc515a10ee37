"""Real report inputs, built once per module from the session's synthetic tree.

``report_inputs`` (a dict of folders): two eval outputs (the oracle exact, 2 frames, and the oracle 1.25x too
large, 1 frame), both modes, clouds saved; a 3-step Stage-1 training run; a filter output of the exact eval (npz); and a
hand-written ablation folder that uses them as the variants ``stage2`` (baseline, filtered) and ``stage2_mask``,
with an ablation.csv computed here from the eval CSVs and a verdicts.json (stage2_mask loses on its target).
"""

from __future__ import annotations

import json
import shutil

import pytest
from report_helpers import csv_mean

from coopmap.csvio import AppendCsv

RES = "data.resolution=[56,42]"
ABLATION_METRICS = ("depth_rmse", "pose_abs_t", "scale_err", "chamfer", "fscore", "bev_iou", "floating_ratio",
                    "vehicle_recall")


def _evaluate(root, out, *overrides):
    from coopmap.config import compose
    from coopmap.evaluation.runner import evaluate

    evaluate(compose("eval", [f"data.root={root}", "data.split=test", "model=oracle", RES, "eval.save_points=true",
                              f"out_dir={out}", "eval.progress=false", "eval.max_frames=2", *overrides]))
    return out


def _write_ablation(base, evals: dict, run, filt):
    abl = base / "ablation"
    for variant, ev in evals.items():
        shutil.copytree(ev, abl / "eval" / variant)
        shutil.copytree(run, abl / "runs" / variant)
    shutil.copytree(filt, abl / "filter" / "stage2")
    rows = []
    for variant, ev in evals.items():
        for mode in ("single", "coop"):
            n = sum(r["mode"] == mode and r["status"] == "ok" for r in AppendCsv(ev / "coop_metrics.csv").rows())
            row = {"variant": variant, "mode": mode, "n_frames": n}
            row.update({m: csv_mean(ev, mode, m) for m in ABLATION_METRICS})
            rows.append(row)
    base_rows = {r["mode"]: r for r in rows if r["variant"] == "stage2"}
    for r in rows:
        r.update({f"d_{m}": r[m] - base_rows[r["mode"]][m] for m in ABLATION_METRICS})
    columns = ["variant", "mode", "n_frames", *ABLATION_METRICS, *(f"d_{m}" for m in ABLATION_METRICS)]
    AppendCsv(abl / "ablation.csv", columns).rewrite(rows)
    value = next(r for r in rows if r["variant"] == "stage2_mask" and r["mode"] == "coop")["chamfer"]
    baseline = base_rows["coop"]["chamfer"]
    verdicts = [{"variant": "stage2_mask", "targets": "chamfer", "mode": "coop", "baseline": baseline,
                 "value": value, "better": False,
                 "text": f"stage2_mask does NOT beat the baseline on chamfer (coop): {value:.4g} vs {baseline:.4g}"}]
    (abl / "verdicts.json").write_text(json.dumps(verdicts))
    return abl


@pytest.fixture(scope="module")
def report_inputs(synth_tree, tmp_path_factory):
    from coopmap.config import compose
    from coopmap.filtering.config import FilterConfig
    from coopmap.filtering.pipeline import run_filter
    from coopmap.train.loop import train

    base = tmp_path_factory.mktemp("report_inputs")
    exact = _evaluate(synth_tree, base / "exact")
    scaled = _evaluate(synth_tree, base / "scaled", "model.scale=1.25", "eval.max_frames=1")
    run = base / "run"
    train(compose("train", [f"data.root={synth_tree}", f"out_dir={run}", RES, "trainer.max_steps=3",
                            "trainer.progress=false", "experiment=stage1"]))
    filt = base / "filter"
    run_filter(exact, filt, FilterConfig(formats=["npz"], progress=False))
    abl = _write_ablation(base, {"stage2": exact, "stage2_mask": scaled}, run, filt)
    return {"exact": exact, "scaled": scaled, "run": run, "filter": filt, "ablation": abl, "root": synth_tree}
