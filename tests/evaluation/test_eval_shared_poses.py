"""coopmap eval with shared poses: the CSV's input / refinement columns, end to end on the synthetic tree."""

import pytest

from coopmap.config import compose
from coopmap.csvio import AppendCsv
from coopmap.evaluation.runner import evaluate

NOISE = ["data.shared_pose.pos_std_m=0.5", "data.shared_pose.yaw_std_deg=0.5", "data.shared_pose.seed=3"]


def _coop_rows(root, out, *overrides):
    cfg = compose("eval", [f"data.root={root}", "data.split=test", "model=oracle", "data.resolution=[112,84]",
                           f"out_dir={out}", "eval.progress=false", "eval.max_frames=2", "eval.modes=[coop]",
                           *overrides])
    evaluate(cfg)
    return AppendCsv(out / "coop_metrics.csv").rows()


def test_eval_reports_the_shared_pose_error_and_its_refinement(synth_tree, tmp_path):
    """The oracle passing the noisy shared poses through (model.pose_reference=shared) refines nothing; the GT
    oracle removes the whole input error. Both runs see the same noise (same data.shared_pose.seed)."""
    shared = _coop_rows(synth_tree, tmp_path / "shared", *NOISE, "model.pose_reference=shared")
    gt = _coop_rows(synth_tree, tmp_path / "gt", *NOISE)
    assert len(shared) == len(gt) == 2
    for s, g in zip(shared, gt):
        f = {k: float(v) for k, v in s.items() if k in ("input_agent_pose_abs_t", "input_agent_pose_abs_r",
                                                        "agent_pose_abs_t", "agent_refine_t", "agent_refine_r")}
        assert f["input_agent_pose_abs_t"] > 0.05 and f["input_agent_pose_abs_r"] > 0.01
        assert f["agent_pose_abs_t"] == pytest.approx(f["input_agent_pose_abs_t"], abs=1e-4)
        assert abs(f["agent_refine_t"]) < 1e-4 and abs(f["agent_refine_r"]) < 2e-3
        assert float(g["input_agent_pose_abs_t"]) == pytest.approx(f["input_agent_pose_abs_t"], abs=1e-6)
        assert float(g["agent_refine_t"]) == pytest.approx(float(g["input_agent_pose_abs_t"]), abs=1e-4)
