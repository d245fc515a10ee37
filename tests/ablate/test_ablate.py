"""`coopmap ablate`: the micro preset end to end, resumability, and the table / verdict arithmetic."""

import json
import math

import pytest

from coopmap.ablate.pipeline import run_ablation
from coopmap.ablate.presets import METRICS, REFERENCE, VARIANTS
from coopmap.ablate.table import verdicts, with_deltas
from coopmap.csvio import AppendCsv
from coopmap.errors import ConfigError


def test_micro_ablation_end_to_end_then_resumes_without_retraining(synth_tree, tmp_path):
    out = tmp_path / "ablation"
    result = run_ablation(str(synth_tree), str(out), preset="micro", progress=False)
    rows = AppendCsv(out / "ablation.csv").rows()
    assert {(r["variant"], r["mode"]) for r in rows} == {(v, m) for v in [REFERENCE, *VARIANTS]
                                                         for m in ("single", "coop")}
    for r in rows:
        for metric in METRICS:
            assert math.isfinite(float(r[metric])), (r["variant"], r["mode"], metric)
        if r["variant"] == "stage2":
            assert all(float(r[f"d_{m}"]) == 0.0 for m in METRICS)
    judged = json.loads((out / "verdicts.json").read_text())
    assert {v["variant"] for v in judged} == {"stage2_mask", "stage2_mask_distill", "stage2_full"}
    assert "Verdicts" in (out / "ablation.md").read_text()
    assert result["best"] in VARIANTS and (out / "filter" / result["best"] / "filter_metrics.csv").exists()
    stamps = {v: (out / "runs" / v / "last.pt").stat().st_mtime_ns for v in [REFERENCE, *VARIANTS]}
    run_ablation(str(synth_tree), str(out), preset="micro", progress=False)
    assert stamps == {v: (out / "runs" / v / "last.pt").stat().st_mtime_ns for v in stamps}  # nothing retrained


def _row(variant, mode, value):
    return {"variant": variant, "mode": mode, **{m: value for m in METRICS}}


def test_deltas_and_verdicts_closed_form():
    rows = with_deltas([_row("stage2", "coop", 1.0), _row("stage2", "single", 2.0),
                        _row("stage2_mask", "coop", 0.75), _row("stage2_mask_distill", "coop", 1.5),
                        _row("stage2_mask_distill", "single", 1.0), _row("stage2_full", "coop", 1.0)])
    assert rows[2]["d_floating_ratio"] == pytest.approx(-0.25)
    judged = {(v["variant"], v["targets"]): v for v in verdicts(rows)}
    assert judged[("stage2_mask", "floating_ratio")]["better"] is True
    assert judged[("stage2_mask_distill", "scale_err")]["better"] is False
    assert "does NOT beat" in judged[("stage2_mask_distill", "scale_err")]["text"]
    assert judged[("stage2_mask_distill", "pose_abs_t")]["better"] is True
    assert judged[("stage2_full", "worst_pose_abs_t")]["better"] is False  # equal is not better
    tiny_gain = with_deltas([_row("stage2", "coop", 1.0), _row("stage2_mask", "coop", 0.995)])
    (mask,) = [v for v in verdicts(tiny_gain) if v["variant"] == "stage2_mask"]
    assert mask["better"] is False and "no measurable difference" in mask["text"]


def test_missing_eval_split_is_a_clear_error(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ConfigError, match="test"):
        run_ablation(str(tmp_path), str(tmp_path / "out"), preset="micro", progress=False)
