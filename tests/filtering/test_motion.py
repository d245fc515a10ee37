"""Ego motion: GT composition (closed form) and ICP recovering a known motion on a synthetic static scene."""

import math

import numpy as np
import pytest
from filter_scenes import ego_pose, rigid, street, to_lidar

from coopmap.filtering.motion import estimate_motion, gt_motion, icp, rigid_fit


def _errors(T_est, T_true):
    E = np.linalg.inv(T_true) @ T_est
    angle = math.degrees(math.acos(min(1.0, max(-1.0, (np.trace(E[:3, :3]) - 1) / 2))))
    return float(np.linalg.norm(E[:3, 3])), angle


def test_gt_motion_maps_previous_points_onto_current_ones():
    T_w_prev, T_w_cur = rigid(10.0, (5.0, 2.0, 1.9)), rigid(14.0, (6.0, 2.5, 1.9))
    world = np.random.default_rng(0).uniform(-20, 20, (50, 3))
    prev, cur = to_lidar(T_w_prev, world), to_lidar(T_w_cur, world)
    T = gt_motion(T_w_cur, T_w_prev)
    np.testing.assert_allclose(prev @ T[:3, :3].T + T[:3, 3], cur, atol=1e-12)
    # closed form: R(-14) (R(10) x + t_prev - t_cur) = R(-4) x + R(-14) (t_prev - t_cur)
    expected = rigid(-4.0, rigid(-14.0)[:3, :3] @ np.array([-1.0, -0.5, 0.0]))
    np.testing.assert_allclose(T, expected, atol=1e-12)


def test_rigid_fit_is_exact_on_noise_free_correspondences():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(100, 3))
    T = rigid(25.0, (1.0, -2.0, 0.5)) @ np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1.0]])
    b = a @ T[:3, :3].T + T[:3, 3]
    np.testing.assert_allclose(rigid_fit(a, b), T, atol=1e-10)


def test_icp_recovers_a_known_motion_to_centimetres():
    rng = np.random.default_rng(2)
    T_w_prev, T_w_cur = ego_pose(0), rigid(3.0, (1.4, 0.2, 1.9))  # 1.4 m forward, 3 deg yaw
    prev = to_lidar(T_w_prev, street(rng, 120_000))  # two independent samplings of the same static street
    cur = to_lidar(T_w_cur, street(rng, 120_000)) + rng.normal(0, 0.02, (120_000, 3))
    r = estimate_motion(prev, cur, voxel=0.3)
    assert r.ok and r.n_corr > 1000
    t_err, r_err = _errors(r.T_dst_from_src, gt_motion(T_w_cur, T_w_prev))
    assert t_err < 0.03 and r_err < 0.1


def test_icp_without_enough_points_is_not_ok():
    r = icp(np.zeros((5, 3)), np.zeros((5, 3)))
    assert not r.ok and np.array_equal(r.T_dst_from_src, np.eye(4))
    far = icp(np.random.default_rng(0).normal(size=(100, 3)), np.random.default_rng(1).normal(size=(100, 3)) + 50)
    assert not far.ok  # no correspondence within the largest max_corr


@pytest.mark.parametrize("axis", [0, 1])
def test_icp_on_exact_copies_converges_to_the_exact_motion(axis):
    rng = np.random.default_rng(3)
    src = street(rng, 30_000)
    t = np.zeros(3)
    t[axis] = 0.8
    T = rigid(2.0, t)
    r = icp(src, src @ T[:3, :3].T + T[:3, 3], max_src=0)
    t_err, r_err = _errors(r.T_dst_from_src, T)
    assert t_err < 1e-3 and r_err < 1e-3
