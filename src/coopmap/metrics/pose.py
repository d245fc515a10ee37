"""Absolute pose errors in metres and degrees, without alignment (metric, as cooperative driving needs them).

Predicted poses are re-expressed relative to the **predicted** view 0 and GT poses relative to the **GT** view 0
(MapAnything's view 0 is trained toward the identity but not forced to it), then compared one by one.
Poses are ``T_world_from_x`` (*, 4, 4); numpy or torch in, computed in float64 with roma (via coopmap.geometry).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from coopmap.errors import ShapeError, check_shape
from coopmap.geometry import geodesic_angle, invert_pose
from coopmap.metrics._arrays import to_numpy


def _poses(name: str, x) -> torch.Tensor:
    T = torch.as_tensor(to_numpy(x, np.float64))
    check_shape(name, T, (None, 4, 4))
    return T


def pose_errors(pred_poses, gt_poses, pred_ref=None, gt_ref=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-pose translation (m) and rotation (deg) errors after re-expressing each side in its own reference.

    ``E_i = inv(pred_ref) pred_i`` against ``inv(gt_ref) gt_i``; t error = |t_E_pred - t_E_gt|, r error = geodesic
    angle between their rotations.

    Args:
        pred_poses, gt_poses: (V, 4, 4) T_world_from_x of the same V things (cameras, vehicles), each side in its
            own world; pred_ref, gt_ref: (4, 4) the reference pose on each side (default: each side's pose 0).
    Returns:
        t_err (V,) metres, r_err (V,) degrees (0 for the reference itself when it is pose 0).
    """
    P, G = _poses("pred_poses", pred_poses), _poses("gt_poses", gt_poses)
    if P.shape != G.shape:
        raise ShapeError(f"pred_poses {tuple(P.shape)} and gt_poses {tuple(G.shape)} must have the same shape")
    P0 = P[0] if pred_ref is None else _poses("pred_ref", to_numpy(pred_ref)[None])[0]
    G0 = G[0] if gt_ref is None else _poses("gt_ref", to_numpy(gt_ref)[None])[0]
    rel_p = invert_pose(P0) @ P
    rel_g = invert_pose(G0) @ G
    t_err = torch.linalg.norm(rel_p[:, :3, 3] - rel_g[:, :3, 3], dim=-1)
    r_err = torch.rad2deg(geodesic_angle(rel_p[:, :3, :3], rel_g[:, :3, :3]))
    return t_err.numpy(), r_err.numpy()


def pose_abs(pred_poses, gt_poses) -> tuple[float, float]:
    """``pose_abs_t`` (m) and ``pose_abs_r`` (deg): mean errors over views 1..V-1 relative to each side's view 0.

    Args:
        pred_poses, gt_poses: (V, 4, 4) camera poses T_world_from_cam, predicted and GT.
    Returns:
        (t_err, r_err); NaN for V < 2.
    """
    t, r = pose_errors(pred_poses, gt_poses)
    if len(t) < 2:
        return math.nan, math.nan
    return float(t[1:].mean()), float(r[1:].mean())


def agent_poses(cam_poses, T_agent_from_cam, agent_index, camera_index) -> tuple[np.ndarray, np.ndarray]:
    """Vehicle poses of the agents of a sample from their cameras: ``T_world_from_agent = T_world_from_cam
    inv(T_agent_from_cam)``, using each agent's camera with the lowest camera index (camera0 when present).

    Args:
        cam_poses: (V, 4, 4) T_world_from_cam; T_agent_from_cam: (V, 4, 4) each camera in its agent's frame;
        agent_index, camera_index: (V,) ints.
    Returns:
        agents (A,) sorted agent indices, T_world_from_agent (A, 4, 4) float64.
    """
    C = _poses("cam_poses", cam_poses)
    R = _poses("T_agent_from_cam", T_agent_from_cam)
    a = to_numpy(agent_index).astype(np.int64).reshape(-1)
    c = to_numpy(camera_index).astype(np.int64).reshape(-1)
    if not (len(a) == len(c) == len(C) == len(R)):
        raise ShapeError(f"need one agent/camera index per view: {len(C)} poses, {len(a)} agent, {len(c)} camera")
    agents = np.unique(a)
    views = [int(np.flatnonzero(a == k)[np.argmin(c[a == k])]) for k in agents]
    T = C[views] @ invert_pose(R[views])
    return agents, T.numpy()


def agent_pose_abs(pred_cam_poses, gt_cam_poses, T_agent_from_cam, agent_index, camera_index) -> tuple[float, float]:
    """``agent_pose_abs_t`` (m) / ``_r`` (deg): errors of the non-ego agents' vehicle poses, relative to view 0.

    The predicted vehicle pose of an agent is its predicted camera pose composed with the known rig
    (``inv(T_agent_from_cam)``, see :func:`agent_poses`); both sides are re-expressed relative to their own
    view 0 (the ego camera0), as in :func:`pose_abs`; the mean is over agents with index != 0.

    Args:
        pred_cam_poses, gt_cam_poses: (V, 4, 4) T_world_from_cam; T_agent_from_cam: (V, 4, 4);
        agent_index, camera_index: (V,) ints (agent 0 = ego).
    Returns:
        (t_err, r_err); NaN when the sample has no non-ego agent.
    """
    agents, pred_agents = agent_poses(pred_cam_poses, T_agent_from_cam, agent_index, camera_index)
    _, gt_agents = agent_poses(gt_cam_poses, T_agent_from_cam, agent_index, camera_index)
    others = agents != 0
    if not others.any():
        return math.nan, math.nan
    pred_ref, gt_ref = to_numpy(pred_cam_poses)[0], to_numpy(gt_cam_poses)[0]
    t, r = pose_errors(pred_agents, gt_agents, pred_ref=pred_ref, gt_ref=gt_ref)
    return float(t[others].mean()), float(r[others].mean())


#: the columns of :func:`agent_pose_refinement`.
SHARED_POSE_COLUMNS = ("input_agent_pose_abs_t", "input_agent_pose_abs_r", "agent_refine_t", "agent_refine_r")


def agent_pose_refinement(pred_cam_poses, shared_cam_poses, gt_cam_poses, T_agent_from_cam, agent_index,
                          camera_index) -> dict[str, float]:
    """How much of the shared agent poses' error the model removes (docs/metrics.md).

    ``input_agent_pose_abs_t`` / ``_r``: :func:`agent_pose_abs` of the shared camera poses (the model's pose
    inputs, ``shared_camera_pose``) against the GT; ``agent_refine_t`` / ``_r`` = input error - output error (the
    output error being :func:`agent_pose_abs` of the predictions): > 0 when the model refines the shared poses,
    0 when it passes them through.

    Args:
        pred_cam_poses, shared_cam_poses, gt_cam_poses: (V, 4, 4) T_world_from_cam; T_agent_from_cam: (V, 4, 4);
        agent_index, camera_index: (V,) ints (agent 0 = ego).
    Returns:
        the four values (metres, degrees); NaN when the sample has no non-ego agent.
    """
    it, ir = agent_pose_abs(shared_cam_poses, gt_cam_poses, T_agent_from_cam, agent_index, camera_index)
    ot, orr = agent_pose_abs(pred_cam_poses, gt_cam_poses, T_agent_from_cam, agent_index, camera_index)
    return {"input_agent_pose_abs_t": it, "input_agent_pose_abs_r": ir,
            "agent_refine_t": it - ot, "agent_refine_r": ir - orr}
