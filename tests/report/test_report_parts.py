"""The report's building blocks against known answers: number formatting, smoothing, worst-frame ranking, box
outlines, BEV axis directions, image de-normalisation, and recognising the frame of a filtered cloud."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from coopmap.data.images import NORM_STATS, normalize_image
from coopmap.filtering.export import export_cloud
from coopmap.report.collect import EvalOut, FilterOut, MetricRow, Verdict, infer_baseline
from coopmap.report.columns import direction, fmt, fmt_delta
from coopmap.report.frame_plots import box_outlines, draw_bev
from coopmap.report.frames import denormalize, load_filtered, right_handed, worst_frames
from coopmap.report.html import esc, verdicts_html
from coopmap.report.plots import running_mean


def test_numbers_are_printed_with_four_significant_digits_and_nan_as_dash():
    assert fmt(0.123456) == "0.1235" and fmt(3.0) == "3" and fmt(51712.0) == "51,712"
    assert fmt(2.5e-7) == "2.5e-07" and fmt(-1.23456) == "-1.235"
    assert fmt(math.nan) == fmt(None) == fmt("x") == fmt(math.inf) == "–"
    assert fmt_delta(0.01) == "+0.01" and fmt_delta(-0.5) == "-0.5" and fmt_delta(math.nan) == "–"


def test_metric_directions():
    assert direction("fscore") == 1 and direction("d_bev_iou") == 1 and direction("vehicle_recall_after") == 1
    assert direction("chamfer") == -1 and direction("val/scale_err") == -1 and direction("worst_pose_abs_t") == -1
    assert direction("n_points_before") == 0


def test_running_mean_known_values():
    assert np.allclose(running_mean(np.full(10, 3.0), 5), 3.0)
    ramp = np.arange(20, dtype=float)
    assert np.allclose(running_mean(ramp, 5)[2:-2], ramp[2:-2])  # centred: a line is unchanged inside
    assert running_mean(ramp, 5)[0] == pytest.approx(1.0)  # shrinking window at the ends: mean(0, 1, 2)
    y = np.array([1.0, np.nan, 3.0, np.nan, np.nan, np.nan, np.nan])
    out = running_mean(y, 3)
    assert out[1] == pytest.approx(2.0) and math.isnan(out[5])  # NaN left out; no finite value -> NaN
    assert np.array_equal(running_mean(ramp, 1), ramp)


def _eval(rows) -> EvalOut:
    keys = ("scenario", "timestamp", "ego_id", "mode")
    return EvalOut("e", Path("."), [dict(zip(keys, ("s", f"{i:06d}", "1", m)), **v) for i, (m, v) in
                                    enumerate(rows)], None)


def test_worst_frames_rank_errors_high_and_scores_low():
    ev = _eval([("coop", {"chamfer": "0.5", "fscore": "0.9", "status": "ok"}),
                ("coop", {"chamfer": "2.0", "fscore": "0.1", "status": "ok"}),
                ("coop", {"chamfer": "9.0", "fscore": "0.0", "status": "skipped: x"}),
                ("coop", {"chamfer": "nan", "fscore": "0.5", "status": "ok"}),
                ("single", {"chamfer": "7.0", "fscore": "0.2", "status": "ok"})])
    w = worst_frames(ev, 5, "chamfer", "coop")
    assert [f.value for f in w] == [2.0, 0.5] and [f.rank for f in w] == [1, 2]  # skipped and NaN left out
    assert [f.value for f in worst_frames(ev, 2, "fscore", "coop")] == [0.1, 0.5]
    assert [f.key[3] for f in worst_frames(_eval([("single", {"chamfer": "1", "status": "ok"})]), 3)] == ["single"]


def test_box_outline_of_a_turned_box():
    T = np.eye(4)
    T[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # yaw +90 deg: the box's length points along +y (left)
    T[:3, 3] = [10.0, 5.0, -1.0]
    o = box_outlines(T[None], np.array([[2.0, 1.0, 0.8]]))[0]
    assert np.allclose(o[0], o[4])  # closed
    assert np.allclose(o[5], [10, 5]) and np.allclose(o[6], [10, 7])  # heading tick: centre -> front middle
    assert np.allclose(sorted(o[:4, 0]), [9, 9, 11, 11]) and np.allclose(sorted(o[:4, 1]), [3, 3, 7, 7])


def test_bev_draws_x_forward_up_and_y_left_to_the_left():
    ax = Figure(figsize=(4, 4)).subplots()
    draw_bev(ax, np.array([[10.0, 5.0, 0.0]]), np.zeros((0, 3)), np.zeros((0, 4, 4)), np.zeros((0, 3)), np.eye(4),
             "t")
    origin, left, ahead = ax.transData.transform([(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)])  # plot coords: (y, x)
    assert left[0] < origin[0] and ahead[1] > origin[1]  # +y is drawn to the left, +x upward
    assert ax.get_xlim() == (50.0, -50.0) and ax.get_ylim() == (-50.0, 50.0)


def test_denormalize_inverts_the_dataset_normalisation():
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    for norm in ("dinov2", "dust3r"):
        mean, std = NORM_STATS[norm]
        assert np.array_equal(denormalize(normalize_image(rgb, norm).numpy(), mean, std), rgb)


def test_filtered_cloud_in_either_frame_comes_back_right_handed(tmp_path):
    rng = np.random.default_rng(0)
    ref = rng.uniform(-30, 30, (3000, 3)).astype(np.float32)
    ref[:, 1] += 20.0  # mostly on the left: a y flip lands off the cloud
    subset = ref[::3]
    assert np.array_equal(right_handed(subset, ref), subset)
    assert np.allclose(right_handed(subset * [1, -1, 1], ref), subset)
    key = ("scen", "000010", "7", "coop")
    for fmt_name, frame in (("pcd", "native"), ("kitti", "rh"), ("npz", "native")):
        out = tmp_path / fmt_name
        export_cloud(out / "coop" / "scen" / "7" / "000010", subset, np.ones(len(subset)), [fmt_name], frame)
        got = load_filtered(FilterOut("f", out, []), key, ref)
        assert np.allclose(got, subset, atol=1e-5), (fmt_name, frame)


def test_baseline_is_the_variant_without_deltas():
    rows = [MetricRow("stage1", "coop", {"chamfer": 2.0}, {"chamfer": 0.5}),
            MetricRow("stage2", "coop", {"chamfer": 1.5}, {"chamfer": 0.0}),
            MetricRow("stage2_mask", "coop", {"chamfer": 1.2}, {"chamfer": -0.3})]
    assert infer_baseline(rows) == "stage2"
    assert infer_baseline([MetricRow("a", "coop", {"x": 1.0})]) is None


def test_verdicts_are_escaped_and_failures_marked():
    v = [Verdict("m<ask>", "floating_ratio", "coop", 0.2, 0.3, False, "worse & <b>louder</b>"),
         Verdict("d", "scale_err", "coop", 0.2, 0.1, True, "")]
    out = verdicts_html(v, "stage2")
    assert "m&lt;ask&gt;" in out and "worse &amp; &lt;b&gt;louder&lt;/b&gt;" in out and "<ask>" not in out
    assert out.count("DOES NOT BEAT BASELINE") == 1 and out.count("BEATS BASELINE") == 1
    assert "<b>1 of 2</b>" in out and esc('"') == "&quot;"


def test_four_way_verdicts_of_the_ablation_get_their_own_badges():
    v = [Verdict("stage2_mask", "sky_float_ratio", "coop", 0.3, 0.1, True, "", "win", "stage2"),
         Verdict("stage2_full", "agent_pose_abs_t", "coop", 10.0, 10.1, None, "", "inconclusive", "x"),
         Verdict("stage2_mask_distill", "scale_err", "coop", 0.2, 0.21, None, "", "no evidence", "stage2_mask"),
         Verdict("stage2_mask", "unlabelled_depth_abs_rel", "coop", 0.2, 0.4, False, "", "loss", "stage2")]
    out = verdicts_html(v, "stage2")
    for badge in ("WIN", "INCONCLUSIVE", "NO EVIDENCE", "LOSS"):
        assert out.count(f'<span class="badge">{badge}</span>') == 1, badge
    assert "<b>1 of 4</b> comparison(s) are a win against its predecessor" in out
    assert "vs stage2_mask 0.2" in out  # each number is read against the predecessor it was judged against
