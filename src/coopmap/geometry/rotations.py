"""Rotations, rigid and similarity transforms in torch, built on roma.

Quaternions are **XYZW** (MapAnything's and roma's order). Poses are homogeneous (*B, 4, 4) matrices
``T_a_from_b`` mapping points of frame b into frame a. Every function accepts any leading batch dimensions.
"""

from __future__ import annotations

import math

import roma
import torch

from coopmap.errors import check_shape


def _quat_outer_to_rotmat() -> torch.Tensor:
    """(16, 9): the rotation matrix (row-major) of a unit XYZW quaternion q as a linear map of q q^T (row-major)."""
    C = torch.zeros(4, 4, 3, 3, dtype=torch.float64)
    x, y, z, w = range(4)
    for i, j, k, sign in ((x, x, 0, 1), (y, y, 0, -1), (z, z, 0, -1), (w, w, 0, 1),
                          (x, x, 1, -1), (y, y, 1, 1), (z, z, 1, -1), (w, w, 1, 1),
                          (x, x, 2, -1), (y, y, 2, -1), (z, z, 2, 1), (w, w, 2, 1)):
        C[i, j, k, k] = sign  # diagonal: e.g. R00 = xx - yy - zz + ww
    for (r, c), terms in {(0, 1): ((x, y, 2), (z, w, -2)), (1, 0): ((x, y, 2), (z, w, 2)),
                          (0, 2): ((x, z, 2), (y, w, 2)), (2, 0): ((x, z, 2), (y, w, -2)),
                          (1, 2): ((y, z, 2), (x, w, -2)), (2, 1): ((y, z, 2), (x, w, 2))}.items():
        for i, j, coef in terms:
            C[i, j, r, c] = coef  # e.g. R01 = 2 (xy - zw)
    return C.reshape(16, 9)


_QUAT_OUTER_TO_ROTMAT = _quat_outer_to_rotmat()


def quat_xyzw_to_rotmat(quat: torch.Tensor) -> torch.Tensor:
    """(*B, 4) XYZW quaternion (normalised here) -> (*B, 3, 3) rotation matrix.

    ``R = (q q^T) C`` for the normalised q, C the constant (16, 9) map of the usual quadratic formula: the same as
    roma's ``unitquat_to_rotmat(quat_normalize(q))`` (tested) in a handful of ops instead of ~40 per-entry ones; the
    losses rebuild the predicted and teacher poses every training step.
    """
    check_shape("quat", quat, ("*", 4))
    q = quat / torch.linalg.vector_norm(quat, dim=-1, keepdim=True)  # as roma: the gradient is tangent to |q| = 1
    outer = (q[..., :, None] * q[..., None, :]).flatten(-2)  # (*B, 16)
    R = outer @ _QUAT_OUTER_TO_ROTMAT.to(device=quat.device, dtype=quat.dtype)
    return R.unflatten(-1, (3, 3))


def rotmat_to_quat_xyzw(R: torch.Tensor) -> torch.Tensor:
    """(*B, 3, 3) rotation matrix -> (*B, 4) unit quaternion, XYZW, sign not standardised."""
    check_shape("R", R, ("*", 3, 3))
    return roma.rotmat_to_unitquat(R)


def pose_from_quat_trans(quat: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """(*B, 4) XYZW quaternion and (*B, 3) translation -> (*B, 4, 4) homogeneous pose."""
    check_shape("trans", trans, ("*", 3))
    R = quat_xyzw_to_rotmat(quat)
    top = torch.cat([R, trans.to(R.dtype).expand(R.shape[:-2] + (3,))[..., None]], -1)  # (*B, 3, 4)
    bottom = R.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(R.shape[:-2] + (1, 4))
    return torch.cat([top, bottom], -2)  # two ops (a training loss builds these every step)


def pose_to_quat_trans(T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(*B, 4, 4) pose -> ((*B, 4) XYZW quaternion, (*B, 3) translation)."""
    check_shape("T", T, ("*", 4, 4))
    return rotmat_to_quat_xyzw(T[..., :3, :3]), T[..., :3, 3]


def invert_pose(T_a_from_b: torch.Tensor) -> torch.Tensor:
    """(*B, 4, 4) rigid transform -> its inverse T_b_from_a = ``[R^T, -R^T t]`` (exact for rigid transforms).

    Written as plain tensor algebra (a handful of ops) rather than through roma's ``Rigid`` objects: the losses
    invert small batches of poses several times per training step, where the object overhead dominated.
    """
    check_shape("T", T_a_from_b, ("*", 4, 4))
    Rt = T_a_from_b[..., :3, :3].transpose(-1, -2)
    return torch.cat([torch.cat([Rt, -(Rt @ T_a_from_b[..., :3, 3:])], -1), T_a_from_b[..., 3:, :]], -2)


def compose_poses(T_a_from_b: torch.Tensor, T_b_from_c: torch.Tensor) -> torch.Tensor:
    """T_a_from_c = T_a_from_b T_b_from_c, (*B, 4, 4) each (broadcasting batch dims)."""
    return T_a_from_b @ T_b_from_c


def relative_pose(T_world_from_a: torch.Tensor, T_world_from_b: torch.Tensor) -> torch.Tensor:
    """T_a_from_b = inv(T_world_from_a) T_world_from_b: frame b expressed in frame a. (*B, 4, 4)."""
    return invert_pose(T_world_from_a) @ T_world_from_b


def transform_points(T_a_from_b, pts_b):
    """Apply (*B, 4, 4) transforms to (*B, N, 3) points (torch or numpy). Returns (*B, N, 3) in frame a."""
    R = T_a_from_b[..., :3, :3]
    t = T_a_from_b[..., None, :3, 3]
    return pts_b @ R.swapaxes(-1, -2) + t


def geodesic_angle(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Geodesic distance between (*B, 3, 3) rotations, in radians in [0, pi], (*B,).

    ``atan2(sin, cos)`` of the relative rotation R = R1^T R2: ``cos = (trace R - 1) / 2`` and, since
    ``R - R^T = 2 sin(angle) [axis]_x`` whose Frobenius norm is ``2 sqrt(2) sin``, ``sin = |R - R^T|_F / (2 sqrt 2)``.
    The gradient stays finite everywhere, near 0 and pi included. (roma's ``rotmat_geodesic_distance`` uses asin,
    whose gradient is infinite near pi: training losses on random-init poses produced NaN gradients with it.)
    A handful of whole-matrix ops, no per-entry indexing: the losses call it on small batches every step.
    """
    check_shape("R1", R1, ("*", 3, 3))
    check_shape("R2", R2, ("*", 3, 3))
    R = R1.transpose(-1, -2) @ R2
    sin = torch.linalg.matrix_norm(R - R.transpose(-1, -2)) * (0.5 / math.sqrt(2.0))
    cos = 0.5 * (torch.diagonal(R, dim1=-2, dim2=-1).sum(-1) - 1.0)
    return torch.atan2(sin, cos)


def umeyama_alignment(
    src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None, with_scale: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares Sim(3) (or SE(3)) alignment: ``dst ~ s R src + t`` (Umeyama, via roma).

    Args:
        src, dst: (*B, N, 3) corresponding points; weights: optional (*B, N) non-negative.
        with_scale: estimate s (Sim(3)); otherwise s = 1 (SE(3)).
    Returns:
        s (*B,), R (*B, 3, 3), t (*B, 3).
    """
    check_shape("src", src, ("*", None, 3))
    if src.shape != dst.shape:
        raise ValueError(f"src and dst must have the same shape, got {tuple(src.shape)} and {tuple(dst.shape)}")
    out = roma.rigid_points_registration(src, dst, weights=weights, compute_scaling=with_scale)
    if with_scale:
        R, t, s = out
    else:
        R, t = out
        s = torch.ones(R.shape[:-2], dtype=R.dtype, device=R.device)
    return s, R, t
