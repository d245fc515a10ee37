import math

import numpy as np
import pytest
import roma
import torch

from coopmap.errors import ShapeError
from coopmap.metrics import agent_pose_abs, agent_poses, pose_abs, pose_errors


def _poses(n, seed):
    torch.manual_seed(seed)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = roma.random_rotmat(n, dtype=torch.float64).numpy()
    T[:, :3, 3] = np.random.default_rng(seed).normal(0, 10, (n, 3))
    return T


def _rot(axis, deg):
    T = np.eye(4)
    T[:3, :3] = roma.rotvec_to_rotmat(torch.tensor(axis, dtype=torch.float64) * math.radians(deg)).numpy()
    return T


def test_zero_error_and_invariance_to_each_sides_world():
    gt = _poses(6, 0)
    pred = _poses(1, 1)[0] @ gt  # same cameras, another world frame
    t, r = pose_errors(pred, gt)
    assert np.abs(t).max() < 1e-9 and np.abs(r).max() < 1e-5
    assert pose_abs(pred, gt) == pytest.approx((0.0, 0.0), abs=1e-5)


def test_known_rotation_and_translation_errors():
    gt = _poses(5, 2)
    pred = gt.copy()
    pred[2] = pred[2] @ _rot([0.0, 0.6, 0.8], 10.0)  # rotate view 2 about its own centre
    pred[3, :3, 3] += pred[0, :3, :3] @ np.array([0.0, 3.0, 4.0])  # 5 m, in view 0's axes
    t, r = pose_errors(pred, gt)
    np.testing.assert_allclose(t, [0, 0, 0, 5, 0], atol=1e-9)
    np.testing.assert_allclose(r, [0, 0, 10, 0, 0], atol=1e-6)
    assert pose_abs(pred, gt) == pytest.approx((5 / 4, 10 / 4), abs=1e-6)


def test_error_of_view0_moves_every_relative_pose():
    gt = _poses(3, 3)
    pred = gt.copy()
    pred[0, :3, 3] += pred[0, :3, :3] @ np.array([1.0, 0, 0])  # view 0 off by 1 m along its own x
    t, _ = pose_errors(pred, gt)
    np.testing.assert_allclose(t, [0, 1, 1], atol=1e-9)


def test_single_view_and_shape_errors():
    assert all(math.isnan(v) for v in pose_abs(np.eye(4)[None], np.eye(4)[None]))
    with pytest.raises(ShapeError):
        pose_errors(_poses(3, 0), _poses(4, 0))
    with pytest.raises(ShapeError):
        pose_errors(np.eye(4), np.eye(4))


def _rig_sample(offset_m=0.0, yaw_deg=0.0, seed=4):
    """2 agents x 3 cameras; the non-ego agent's predicted pose moved along its forward axis / yawed."""
    rigs = _poses(3, seed)
    agents = [np.eye(4), _poses(1, seed + 1)[0]]
    err = _rot([0, 0, 1.0], yaw_deg)
    err[0, 3] = offset_m
    gt = np.stack([agents[a] @ rigs[k] for a in range(2) for k in range(3)])
    pred = np.stack([agents[a] @ (err if a else np.eye(4)) @ rigs[k] for a in range(2) for k in range(3)])
    rig_v = np.stack([rigs[k] for _ in range(2) for k in range(3)])
    return pred, gt, rig_v, np.repeat([0, 1], 3), np.tile([0, 1, 2], 2)


def test_agent_pose_offset_and_yaw_closed_form():
    pred, gt, rig_v, a, c = _rig_sample(offset_m=2.0)
    assert agent_pose_abs(pred, gt, rig_v, a, c) == pytest.approx((2.0, 0.0), abs=1e-6)
    assert pose_abs(pred, gt)[0] == pytest.approx(3 / 5 * 2.0, abs=1e-9)
    pred, gt, rig_v, a, c = _rig_sample(yaw_deg=7.0)
    assert agent_pose_abs(pred, gt, rig_v, a, c) == pytest.approx((0.0, 7.0), abs=1e-6)


def test_agent_poses_use_the_lowest_camera_index():
    pred, gt, rig_v, a, c = _rig_sample()
    agents, T = agent_poses(gt[1:], rig_v[1:], a[1:], c[1:])  # the ego's camera0 is missing
    np.testing.assert_array_equal(agents, [0, 1])
    np.testing.assert_allclose(T[0], np.eye(4), atol=1e-9)
    assert all(math.isnan(v) for v in agent_pose_abs(pred[:3], gt[:3], rig_v[:3], a[:3], c[:3]))
    with pytest.raises(ShapeError, match="index"):
        agent_poses(gt, rig_v, a[:2], c)
