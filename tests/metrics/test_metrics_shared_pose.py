"""Input (shared) agent pose error and refinement columns of frame_metrics, in closed form; the shared oracle."""

import math

import numpy as np
import pytest
import torch

from coopmap.geometry import rotmat_to_quat_xyzw
from coopmap.metrics import frame_metrics
from coopmap.models.oracle import oracle_predictions
from scene_frames import rigid


def _share(views, moves):
    """Add the shared_* keys: agent a's shared pose = its GT agent pose moved by ``moves[a]`` in its own frame."""
    for view in views:
        a = int(view["agent_index"][0])
        A = view["agent_pose"][0].double().numpy()
        M = A @ moves.get(a, np.eye(4)) @ np.linalg.inv(A)  # the move, in the view-0 frame
        cam = torch.as_tensor(M)[None] @ view["camera_pose"].double()
        view["shared_camera_pose"] = cam.float()
        view["shared_agent_pose"] = torch.as_tensor(M @ A)[None].float()
        view["shared_camera_pose_quats"] = rotmat_to_quat_xyzw(cam[:, :3, :3]).float()
        view["shared_camera_pose_trans"] = cam[:, :3, 3].float()
    return views


@pytest.mark.parametrize("dx, dy, yaw", [(0.5, 0.0, 0.0), (0.3, -0.4, 2.0), (0.0, 0.0, 5.0)])
def test_input_error_is_the_injected_move_and_the_gt_oracle_refines_all_of_it(sample_builder, dx, dy, yaw):
    """Agent 1 shared at its pose moved by (dx, dy) and yawed in its own frame: input_agent_pose_abs_t =
    |(dx, dy)|, _r = |yaw|; a GT prediction has output error 0, so the refinement is the whole input error."""
    views, preds, lidar, _ = sample_builder(n_agents=2)
    out = frame_metrics(_share(views, {1: rigid(yaw, (dx, dy, 0.0))}), preds, lidar)
    assert out["input_agent_pose_abs_t"] == pytest.approx(math.hypot(dx, dy), abs=1e-5)
    assert out["input_agent_pose_abs_r"] == pytest.approx(abs(yaw), abs=1e-3)
    assert out["agent_refine_t"] == pytest.approx(out["input_agent_pose_abs_t"], abs=1e-5)
    assert out["agent_refine_r"] == pytest.approx(out["input_agent_pose_abs_r"], abs=1e-3)


def test_oracle_with_shared_poses_refines_nothing(sample_builder):
    """model.pose_reference=shared passes the shared poses through: input error = output error, refinement 0."""
    views, _, lidar, _ = sample_builder(n_agents=3)
    views = _share(views, {1: rigid(1.5, (0.4, 0.3, 0.0)), 2: rigid(-3.0, (-0.2, 0.6, 0.1))})
    for v in views:
        v["img"] = v["img"].float()
    preds = oracle_predictions(views, pose_reference="shared")
    out = frame_metrics(views, preds, lidar)
    assert out["input_agent_pose_abs_t"] > 0.4 and out["input_agent_pose_abs_r"] > 1.0
    assert out["agent_pose_abs_t"] == pytest.approx(out["input_agent_pose_abs_t"], abs=1e-5)
    assert out["agent_pose_abs_r"] == pytest.approx(out["input_agent_pose_abs_r"], abs=1e-3)
    assert out["agent_refine_t"] == pytest.approx(0.0, abs=1e-5)
    assert out["agent_refine_r"] == pytest.approx(0.0, abs=1e-3)


def test_columns_are_nan_without_shared_poses_or_cooperators(sample_builder):
    out = frame_metrics(*sample_builder(n_agents=2)[:3])
    assert all(math.isnan(out[k]) for k in ("input_agent_pose_abs_t", "agent_refine_t", "agent_refine_r"))
    views, preds, lidar, _ = sample_builder(n_agents=1)
    out = frame_metrics(_share(views, {}), preds, lidar)
    assert math.isnan(out["input_agent_pose_abs_t"]) and math.isnan(out["agent_refine_r"])
