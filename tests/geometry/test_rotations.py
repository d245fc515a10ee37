import math

import numpy as np
import pytest
import roma
import torch

from coopmap.errors import ShapeError
from coopmap.geometry import (
    geodesic_angle,
    invert_pose,
    pose_from_quat_trans,
    pose_to_quat_trans,
    quat_xyzw_to_rotmat,
    relative_pose,
    rotmat_to_quat_xyzw,
    transform_points,
    umeyama_alignment,
)


def _random_poses(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    R = roma.random_rotmat(n, dtype=torch.float64)
    t = torch.randn(n, 3, generator=g, dtype=torch.float64) * 10
    T = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    T[:, :3, :3], T[:, :3, 3] = R, t
    return T


def test_quaternion_round_trip_xyzw():
    R = roma.random_rotmat(100, dtype=torch.float64)
    q = rotmat_to_quat_xyzw(R)
    torch.testing.assert_close(quat_xyzw_to_rotmat(q), R, atol=1e-12, rtol=0)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(100, dtype=torch.float64))


def test_quaternion_to_rotmat_equals_roma_on_unnormalised_batches_with_gradients():
    q = torch.randn(3, 50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 5
    q.requires_grad_()
    ref = roma.unitquat_to_rotmat(roma.quat_normalize(q))
    ours = quat_xyzw_to_rotmat(q)
    torch.testing.assert_close(ours, ref, atol=1e-13, rtol=0)
    w = torch.randn_like(ref)
    g_ours, = torch.autograd.grad((ours * w).sum(), q)
    g_ref, = torch.autograd.grad((ref * w).sum(), q)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(quat_xyzw_to_rotmat, (q[0, :4].detach().requires_grad_(),))


def test_quaternion_order_is_xyzw():
    angle = 0.7
    R = torch.tensor([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]],
                     dtype=torch.float64)
    q = rotmat_to_quat_xyzw(R)
    q = q * torch.sign(q[3])
    expected = torch.tensor([0, 0, math.sin(angle / 2), math.cos(angle / 2)], dtype=torch.float64)
    torch.testing.assert_close(q, expected, atol=1e-12, rtol=0)


def test_pose_quat_trans_round_trip():
    T = _random_poses(20)
    q, t = pose_to_quat_trans(T)
    torch.testing.assert_close(pose_from_quat_trans(q, t), T, atol=1e-12, rtol=0)


def test_invert_and_relative_pose():
    Ta, Tb = _random_poses(30, 1), _random_poses(30, 2)
    eye = torch.eye(4, dtype=torch.float64).expand(30, 4, 4)
    torch.testing.assert_close(invert_pose(Ta) @ Ta, eye, atol=1e-12, rtol=0)
    T_ab = relative_pose(Ta, Tb)
    torch.testing.assert_close(Ta @ T_ab, Tb, atol=1e-10, rtol=0)


def test_geodesic_angle_of_known_rotation_and_invariance():
    angles = torch.linspace(0.0, math.pi - 1e-3, 50, dtype=torch.float64)
    axis = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    R = roma.rotvec_to_rotmat(axis * angles[:, None])
    I3 = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
    torch.testing.assert_close(geodesic_angle(I3, R), angles, atol=1e-6, rtol=0)
    Q = roma.random_rotmat(50, dtype=torch.float64)
    torch.testing.assert_close(geodesic_angle(Q @ I3, Q @ R), angles, atol=1e-6, rtol=0)
    torch.testing.assert_close(geodesic_angle(I3 @ Q, R @ Q), angles, atol=1e-6, rtol=0)


@pytest.mark.parametrize("angle", [0.0, 1e-7, 1e-3, 1.0, math.pi - 1e-4, math.pi - 1e-7, math.pi])
def test_geodesic_angle_gradient_is_finite_near_zero_and_pi(angle):
    rotvec = torch.tensor([0.3, -0.2, 0.9]) / math.sqrt(0.94) * angle
    rotvec.requires_grad_(True)
    R = roma.rotvec_to_rotmat(rotvec)
    value = geodesic_angle(torch.eye(3).expand(3, 3), R)
    value.backward()
    assert torch.isfinite(rotvec.grad).all()
    assert float(value.detach()) == pytest.approx(angle, abs=2e-3 if angle > 3.1 else 1e-6)


def test_umeyama_recovers_known_similarity():
    src = torch.randn(4, 100, 3, dtype=torch.float64)
    s_true = torch.tensor([0.5, 1.0, 1.25, 3.0], dtype=torch.float64)
    R_true = roma.random_rotmat(4, dtype=torch.float64)
    t_true = torch.randn(4, 3, dtype=torch.float64)
    dst = s_true[:, None, None] * src @ R_true.transpose(-1, -2) + t_true[:, None]
    s, R, t = umeyama_alignment(src, dst)
    torch.testing.assert_close(s, s_true, atol=1e-9, rtol=0)
    torch.testing.assert_close(R, R_true, atol=1e-9, rtol=0)
    torch.testing.assert_close(t, t_true, atol=1e-9, rtol=0)
    s1, _, _ = umeyama_alignment(src, src @ R_true.transpose(-1, -2), with_scale=False)
    torch.testing.assert_close(s1, torch.ones(4, dtype=torch.float64))


def test_transform_points_numpy_and_torch_agree():
    T = _random_poses(3)
    pts = torch.randn(3, 7, 3, dtype=torch.float64)
    out = transform_points(T, pts)
    np.testing.assert_allclose(transform_points(T.numpy(), pts.numpy()), out.numpy(), atol=1e-12)
    torch.testing.assert_close(transform_points(invert_pose(T), out), pts, atol=1e-12, rtol=0)


def test_shape_errors_are_typed():
    with pytest.raises(ShapeError, match="quat"):
        quat_xyzw_to_rotmat(torch.zeros(3))
