"""`coopmap ablate`: the micro preset end to end, resumability, and the table / statistics / verdict arithmetic."""

import json
import math

import numpy as np
import pytest
import torch

from coopmap.ablate.pipeline import run_ablation, start_model_overrides
from coopmap.ablate.presets import (
    COMPARISONS,
    METRICS,
    REFERENCES,
    START,
    V2X,
    V2X_VARIANTS,
    VARIANTS,
    trivial_references,
)
from coopmap.ablate.stats import (
    INCONCLUSIVE,
    LOSS,
    NO_EVIDENCE,
    WIN,
    beats_on_every_seed,
    bootstrap_mean_ci,
    judge,
    paired_differences,
)
from coopmap.ablate.table import judge_all, summary_rows
from coopmap.csvio import AppendCsv
from coopmap.errors import CheckpointError, ConfigError
from coopmap.models.config import ModelConfig
from coopmap.models.factory import build_model
from coopmap.train.checkpoint import atomic_torch_save

ARCH = {"name": "tiny", "embed_dim": 32, "depth": 2, "num_heads": 2}


@pytest.fixture(scope="module")
def start_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("start") / "start.pt"
    atomic_torch_save({"model": build_model(ModelConfig(**ARCH)).state_dict(), "model_config": ARCH}, path)
    return path


def test_micro_ablation_end_to_end_then_resumes_without_retraining(synth_tree, tmp_path, start_ckpt):
    out = tmp_path / "ablation"
    result = run_ablation(str(synth_tree), str(out), preset="micro", progress=False, start=str(start_ckpt),
                          seeds=(1, 2))
    rows = AppendCsv(out / "ablation.csv").rows()
    trained = [*VARIANTS, *(v + V2X for v in V2X_VARIANTS)]
    names = [f"ref_{n}" for n in REFERENCES] + [START, *trained]
    assert {(r["variant"], r["mode"]) for r in rows} == {(v, m) for v in names for m in ("single", "coop")}
    for r in rows:
        for metric in ("depth_abs_rel", "scale_err", "pose_abs_t", "pose_abs_r", "chamfer"):
            assert math.isfinite(float(r[metric])), (r["variant"], r["mode"], metric)
        assert int(r["n_seeds"]) == (2 if r["variant"] in trained else 1)
        if r["variant"] == "stage2":
            assert all(float(r[f"d_{m}"]) == 0.0 for m in METRICS if math.isfinite(float(r[m])))
    oracle = {r["mode"]: r for r in rows if r["variant"] == "ref_oracle"}
    shared = {r["mode"]: r for r in rows if r["variant"] == "ref_shared_poses"}
    assert float(shared["coop"]["input_agent_pose_abs_t"]) > 0.05  # the default 0.5 m noise reaches the inputs
    assert abs(float(shared["coop"]["agent_refine_t"])) < 1e-4  # passed through: nothing refined
    assert float(oracle["coop"]["pose_abs_t"]) < 1e-4 and float(oracle["single"]["depth_abs_rel"]) < 1e-4
    judged = json.loads((out / "verdicts.json").read_text())
    assert [(v["variant"], v["predecessor"], v["targets"]) for v in judged] == [
        (c.variant, c.predecessor, c.metric) for c in COMPARISONS]
    assert {v["verdict"] for v in judged} <= {WIN, LOSS, NO_EVIDENCE, INCONCLUSIVE}
    assert all(len(v["ci_per_seed"]) == 2 for v in judged)
    md = (out / "ablation.md").read_text()
    assert "Verdicts" in md and "ref_identity_poses" in md and " ± " in md
    assert result["best"] in VARIANTS and (out / "filter" / result["best"] / "s1" / "filter_metrics.csv").exists()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/s*/last.pt")}
    assert len(stamps) == 2 * len(trained)
    run_ablation(str(synth_tree), str(out), preset="micro", progress=False, start=str(start_ckpt),
                          seeds=(1, 2))
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}  # nothing retrained


def test_start_checkpoint_must_record_its_architecture(tmp_path, start_ckpt):
    assert start_model_overrides(str(start_ckpt)) == [f"model.{k}={v}" for k, v in ARCH.items()]
    bare = tmp_path / "bare.pt"
    atomic_torch_save({"model": {}}, bare)
    with pytest.raises(CheckpointError, match="model config"):
        start_model_overrides(str(bare))


def test_bootstrap_ci_closed_form():
    assert bootstrap_mean_ci([0.3] * 7) == (pytest.approx(0.3), pytest.approx(0.3), pytest.approx(0.3))
    mean, lo, hi = bootstrap_mean_ci([-1.0, 1.0] * 50)
    assert mean == 0.0 and lo < 0 < hi
    # the 95 % interval of a mean of 100 +-1 values: about +-1.96 / sqrt(100)
    assert hi == pytest.approx(0.196, abs=0.03) and lo == pytest.approx(-0.196, abs=0.03)
    assert all(math.isnan(x) for x in bootstrap_mean_ci([]))


def test_paired_differences_use_common_finite_frames_only():
    a = {("s", "1"): 1.0, ("s", "2"): 5.0, ("s", "3"): math.nan, ("s", "4"): 2.0}
    b = {("s", "1"): 0.5, ("s", "2"): 1.0, ("s", "3"): 1.0}
    np.testing.assert_array_equal(paired_differences(a, b), [0.5, 4.0])


def _j(diffs, beats=(True, True), lower=True):
    return judge([np.asarray(d, dtype=float) for d in diffs], lower, beats_trivial=beats, trivial_value=2.0)


def test_verdict_rules():
    shifted = [-0.5 + 0.01 * np.sin(np.arange(20)), -0.4 + 0.01 * np.cos(np.arange(20))]
    win = _j(shifted)
    assert win.verdict == WIN and win.mean_diff == pytest.approx(-0.45, abs=0.01)
    assert win.seed_spread == pytest.approx(np.std([np.mean(d) for d in shifted], ddof=1))
    assert _j([-d for d in shifted]).verdict == LOSS
    assert _j(shifted, lower=False).verdict == LOSS  # the same numbers: a loss if higher is better
    noisy = [shifted[0], np.random.default_rng(0).normal(0, 1, 20)]
    assert _j(noisy).verdict == NO_EVIDENCE  # one seed's interval includes 0
    assert _j(shifted[:1]).verdict == NO_EVIDENCE  # one seed cannot tell seed noise
    # both seeds' intervals exclude 0 (tiny frame noise) but the seeds disagree by more than the mean difference
    spread = [np.full(10, -0.01) + 1e-4 * np.arange(10), np.full(10, -1.0) + 1e-4 * np.arange(10)]
    assert _j(spread).verdict == NO_EVIDENCE and "seed spread" in _j(spread).reason
    # neither side beats the trivial reference: inconclusive whatever the difference
    assert _j(shifted, beats=(False, False)).verdict == INCONCLUSIVE
    assert "on every seed's frames" in _j(shifted, beats=(False, False)).reason
    assert _j(shifted, beats=(True, False)).verdict == WIN
    assert _j(shifted, beats=(False, True)).verdict == WIN  # the predecessor learnt it; the variant lost a part
    assert _j(shifted, beats=None).verdict == WIN  # no trivial reference for this metric


def test_beating_a_reference_must_hold_on_every_seed_and_its_frames():
    frames = np.arange(20)
    clear = [-0.3 + 0.01 * np.sin(frames), -0.2 + 0.01 * np.cos(frames)]  # side - reference, per seed
    assert beats_on_every_seed(clear, lower_is_better=True)
    assert not beats_on_every_seed(clear, lower_is_better=False)
    assert beats_on_every_seed([-d for d in clear], lower_is_better=False)
    # the seed mean beats the reference (-0.1) but one seed's frames do not: +-1 frame noise around -0.05
    noisy = [clear[0], -0.05 + np.random.default_rng(3).normal(0, 1, 20)]
    assert np.mean([d.mean() for d in noisy]) < 0 and not beats_on_every_seed(noisy, lower_is_better=True)
    assert not beats_on_every_seed([], lower_is_better=True)
    assert not beats_on_every_seed([np.array([np.nan, np.nan])], lower_is_better=True)


def test_trivial_references_by_metric_family():
    assert trivial_references("pose_abs_t", "coop") == ["identity_poses", "rig_at_ego"]
    assert trivial_references("pose_abs_t", "single") == ["identity_poses"]  # rig_at_ego is the GT rig there
    assert trivial_references("scale_err", "coop") == ["constant_depth"]
    assert trivial_references("agent_refine_t", "coop") == ["shared_poses"]  # passing the shared poses through
    assert set(trivial_references("chamfer", "coop")) == {"identity_poses", "rig_at_ego", "constant_depth"}


def _frames(values_by_seed: dict, mode="coop", metric="sky_float_ratio"):
    return {s: {("sc", f"{i:06d}", "1", mode): {metric: float(v)} for i, v in enumerate(vals)}
            for s, vals in values_by_seed.items()}


def test_summary_rows_are_seed_means_with_seed_spread_and_deltas():
    frames = {"stage2": _frames({0: [1, 3], 1: [2, 4]}), "stage2_mask": _frames({0: [0, 2], 1: [2, 2]})}
    rows = {r["variant"]: r for r in summary_rows(frames, worst_k=1)}
    assert rows["stage2"]["sky_float_ratio"] == pytest.approx(2.5)  # seed means 2 and 3
    assert rows["stage2"]["sky_float_ratio_sd"] == pytest.approx(np.std([2, 3], ddof=1))
    assert rows["stage2_mask"]["d_sky_float_ratio"] == pytest.approx(1.5 - 2.5)
    assert rows["stage2"]["n_seeds"] == 2 and rows["stage2"]["n_frames"] == 2


def test_judge_all_pairs_frames_and_reads_the_trivial_reference():
    rng = np.random.default_rng(1)
    base = {s: 0.5 + 0.01 * rng.random(30) for s in (0, 1, 2)}
    frames = {
        "stage2": _frames(base), "stage2_naive": _frames({s: v + 0.2 for s, v in base.items()}),
        "stage2_mask": _frames({s: v - 0.3 for s, v in base.items()}),
        "ref_constant_depth": {None: _frames({0: [0.4] * 30})[0]},
    }
    rows = summary_rows(frames, worst_k=3)
    judged = {(v["variant"], v["predecessor"], v["targets"]): v for v in judge_all(frames, rows)}
    v = judged[("stage2_mask", "stage2", "sky_float_ratio")]
    assert v["verdict"] == WIN and v["better"] is True and v["mean_diff"] == pytest.approx(-0.3)
    assert v["trivial"] == pytest.approx(0.4) and v["seeds"] == [0, 1, 2] and v["n_frames"] == 30
    assert judged[("stage2_mask", "stage2_naive", "sky_float_ratio")]["verdict"] == WIN
    # with the trivial reference at 0.1 neither stage2 (0.5) nor stage2_mask (0.2) beats it
    frames["ref_constant_depth"] = {None: _frames({0: [0.1] * 30})[0]}
    judged = {(v["variant"], v["predecessor"], v["targets"]): v
              for v in judge_all(frames, summary_rows(frames, worst_k=3))}
    assert judged[("stage2_mask", "stage2", "sky_float_ratio")]["verdict"] == INCONCLUSIVE
    # a reference whose mean (0.35) stage2_mask (~0.2) beats, but not frame by frame: 0 on 9 frames in 10 (better
    # than both sides there), 3.5 on the tenth. The differences average -0.15, but a resample with <= 1 of the 3
    # bad frames (p = 0.18) has a positive mean: 0 is inside every seed's interval. A comparison of means would
    # say "beats"; the rule says inconclusive.
    ref = np.tile([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.5], 3)
    frames["ref_constant_depth"] = {None: _frames({0: ref})[0]}
    rows = summary_rows(frames, worst_k=3)
    assert {r["variant"]: r for r in rows if r["mode"] == "coop"}["ref_constant_depth"]["sky_float_ratio"] \
        == pytest.approx(0.35)
    v = {(v["variant"], v["predecessor"], v["targets"]): v for v in judge_all(frames, rows)}[
        ("stage2_mask", "stage2", "sky_float_ratio")]
    assert v["verdict"] == INCONCLUSIVE and v["beats_trivial"] == {"variant": False, "predecessor": False}


def test_pretrained_check_needs_every_test_frame_interval_below_the_reference():
    from coopmap.ablate.pretrain import CRITERIA, check_against_references

    rng = np.random.default_rng(0)
    frames: dict = {"pretrained": {}, "ref_identity_poses": {}, "ref_constant_depth": {}}
    for name, level in (("pretrained", 0.2), ("ref_identity_poses", 1.0), ("ref_constant_depth", 1.0)):
        for metric, mode in CRITERIA:
            rows = _frames({0: level + 0.01 * rng.random(20)}, mode=mode, metric=metric)[0]
            for k, r in rows.items():
                frames[name].setdefault(k, {}).update(r)
        frames[name] = {None: frames[name]}
    checks = check_against_references(frames, summary_rows(frames, worst_k=3))
    assert [(c["metric"], c["mode"]) for c in checks] == CRITERIA and all(c["beats_all"] for c in checks)
    c = checks[0]
    assert c["difference_ci95"]["identity_poses"][0] == pytest.approx(c["pretrained"] - c["references"]["identity_poses"])
    # scale_err: better on average (0.875 vs 1.0) but worse on every fourth frame: the interval includes 0
    k = [k for k in frames["pretrained"][None] if k[3] == "single"]
    for i, key in enumerate(k):
        frames["pretrained"][None][key]["scale_err"] = 0.0 if i % 4 else 3.5
        frames["ref_constant_depth"][None][key]["scale_err"] = 1.0
    checks = {(c["metric"], c["mode"]): c for c in check_against_references(frames, summary_rows(frames, 3))}
    bad = checks[("scale_err", "single")]
    assert bad["pretrained"] < bad["references"]["constant_depth"] and not bad["beats_all"]
    assert bad["difference_ci95"]["constant_depth"][2] > 0 and checks[("scale_err", "coop")]["beats_all"]


def test_pretrain_seconds_add_up_over_resumed_invocations(tmp_path, monkeypatch):
    from coopmap.ablate import pretrain

    now = iter([0.0, 10.0, 10.0, 13.0, 100.0, 101.5, 200.0, 201.0])  # perf_counter: begin/end, stage by stage
    monkeypatch.setattr(pretrain.time, "perf_counter", lambda: next(now))
    clock = pretrain.StageClock(tmp_path / "seconds.json")
    with clock("data"):
        pass
    with clock("train"):
        pass
    clock = pretrain.StageClock(tmp_path / "seconds.json")  # a resumed invocation: training skipped in 1.5 s
    clock.begin("train")
    assert clock.end("train") == {"data": 10, "train": 4, "total": 14}  # rounded; the total of the exact 14.5
    assert clock.seconds == {"data": 10.0, "train": 4.5}
    assert json.loads((tmp_path / "seconds.json").read_text()) == {"data": 10.0, "train": 4.5}
    with pytest.raises(RuntimeError), clock("data"):  # an interrupted stage records nothing
        raise RuntimeError("killed")
    assert clock.seconds["data"] == 10.0


def test_resuming_with_another_pose_noise_is_refused(synth_tree, tmp_path, start_ckpt, monkeypatch):
    from coopmap.ablate import pipeline

    monkeypatch.setattr(pipeline.Ablation, "train_median_depth", lambda self: 1 / 0)  # stop right after the check
    with pytest.raises(ZeroDivisionError):
        run_ablation(str(synth_tree), str(tmp_path), preset="micro", progress=False, start=str(start_ckpt))
    with pytest.raises(ConfigError, match="--pose-noise 0.5 0.5"):
        run_ablation(str(synth_tree), str(tmp_path), preset="micro", progress=False, start=str(start_ckpt),
                     pose_noise=(0.0, 0.0))


def test_missing_eval_split_is_a_clear_error(tmp_path, start_ckpt):
    (tmp_path / "train").mkdir()
    with pytest.raises(ConfigError, match="test"):
        run_ablation(str(tmp_path), str(tmp_path / "out"), preset="micro", progress=False, start=str(start_ckpt))
