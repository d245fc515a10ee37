"""Improvement 3: multi-vehicle consistency of the predicted poses (pairwise agents, rig) and the combined loss.

An agent's predicted pose is its reference camera's (camera0) predicted pose, relative to the predicted view 0,
composed with the known rig: ``A^_a = T^_view0_from_cam inv(T_agent_from_cam)``. Its GT is ``agent_pose``.

- Pairwise (``mode=gt``), over every pair i < j of agents (``torch.combinations``): ``T^_ij = inv(A^_i) A^_j``
  against ``T_ij = inv(A_i) A_j``: ``coop/pose_t`` = mean |t^_ij - t_ij| (metres), ``coop/pose_r`` = mean
  geodesic angle (radians). Unchanged when every predicted pose moves by the same rigid transform.
- Pairwise (``mode=prior``, no GT relative poses): ``coop/prior_dist`` = mean relu(|t^_ij| - max_dist) and
  ``coop/prior_tilt`` = mean relu(tilt^_ij - max_tilt), tilt = angle between the two vehicles' up axes.
- Rig: every other camera of an agent implies the same vehicle pose as its reference camera: ``coop/rig_t``
  (metres), ``coop/rig_r`` (radians), means over those cameras.
- Boxes: :mod:`coopmap.losses.boxes`.
A sample with one agent has no pair: the pairwise terms are 0 and ``coop/n_pairs`` is 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from coopmap.geometry import geodesic_angle, invert_pose
from coopmap.losses.batch import LossBatch
from coopmap.losses.boxes import box_consistency_loss
from coopmap.losses.config import ConsistencyConfig
from coopmap.losses.robust import scalar_penalty
from coopmap.losses.views import AgentLayout, Views, stack

PRED_POSE_KEYS = {"cam_quats": ("B", 4), "cam_trans": ("B", 3)}
RIG_VIEW_KEYS = {"T_agent_from_cam": ("B", 4, 4)}
PAIR_GT_VIEW_KEYS = {"T_agent_from_cam": ("B", 4, 4), "agent_pose": ("B", 4, 4)}


def implied_agent_poses(batch: LossBatch) -> torch.Tensor:
    """The vehicle pose each view implies: ``T^_view0_from_cam inv(T_agent_from_cam)``, relative to the predicted
    view 0. (B, V, 4, 4)."""
    T_cam = batch.pred_poses_rel0
    return T_cam @ invert_pose(stack(batch.views, "T_agent_from_cam").to(T_cam.dtype))


def agent_pairs(n_agents: int, device=None) -> torch.Tensor:
    """Every pair i < j of ``n_agents`` agents, (P, 2) int64, P = n (n - 1) / 2 (0 rows for one agent)."""
    idx = torch.arange(n_agents, device=device)
    return torch.combinations(idx, 2) if n_agents > 1 else idx.new_zeros((0, 2))


def relative_pair_poses(T_world_from_agent: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """T_ij = inv(T_i) T_j for every pair, (B, A, 4, 4) and (P, 2) -> (B, P, 4, 4)."""
    return invert_pose(T_world_from_agent[:, pairs[:, 0]]) @ T_world_from_agent[:, pairs[:, 1]]


def _check(batch: LossBatch, view_keys: dict) -> AgentLayout:
    batch.check(view_keys, PRED_POSE_KEYS)
    return batch.layout


def _pair_errors(views, implied, layout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ref = list(layout.ref_view)
    pred = implied[:, ref]
    gt = stack(views, "agent_pose")[:, ref].to(pred.dtype)
    pairs = agent_pairs(layout.n_agents, pred.device)
    T_pred, T_gt = relative_pair_poses(pred, pairs), relative_pair_poses(gt, pairs)
    t_err = torch.linalg.vector_norm(T_pred[..., :3, 3] - T_gt[..., :3, 3], dim=-1)
    return t_err, geodesic_angle(T_pred[..., :3, :3], T_gt[..., :3, :3]), pairs


def pairwise_pose_errors(views: Views, preds: Views) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair relative pose errors against the GT agent poses.

    Returns:
        t_err: (B, P) metres; r_err: (B, P) radians; pairs: (P, 2) agent indices (i < j).
    """
    batch = LossBatch(views, preds)
    layout = _check(batch, PAIR_GT_VIEW_KEYS)
    return _pair_errors(views, implied_agent_poses(batch), layout)


def _prior_violations(implied, layout, max_dist, max_tilt_deg):
    pairs = agent_pairs(layout.n_agents, implied.device)
    T = relative_pair_poses(implied[:, list(layout.ref_view)], pairs)
    dist = torch.linalg.vector_norm(T[..., :3, 3], dim=-1)
    tilt = torch.atan2(torch.linalg.vector_norm(T[..., :2, 2], dim=-1), T[..., 2, 2])
    return torch.relu(dist - max_dist), torch.relu(tilt - math.radians(max_tilt_deg)), pairs


def pairwise_prior_violations(views: Views, preds: Views, max_dist: float = 70.0, max_tilt_deg: float = 10.0):
    """Hinges on the predicted relative agent poses, without GT: (B, P) metres beyond ``max_dist`` and (B, P)
    radians of relative tilt (angle between the up axes) beyond ``max_tilt_deg``; and the (P, 2) pairs."""
    batch = LossBatch(views, preds)
    layout = _check(batch, RIG_VIEW_KEYS)
    return _prior_violations(implied_agent_poses(batch), layout, max_dist, max_tilt_deg)


def _pair_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of (B, P) values, 0 when P = 0."""
    return x.sum() / max(x.numel(), 1)


def _pairwise_terms(views, implied, layout, mode, w_t, w_r, w_dist, w_tilt, max_dist, max_tilt_deg, rob):
    if mode == "gt":
        t_err, r_err, pairs = _pair_errors(views, implied, layout)
        t, r = _pair_mean(scalar_penalty(t_err, **rob)), _pair_mean(scalar_penalty(r_err, **rob))
        loss, names = w_t * t + w_r * r, ("coop/pose_t", "coop/pose_r")
    elif mode == "prior":
        dist, tilt, pairs = _prior_violations(implied, layout, max_dist, max_tilt_deg)
        t, r = _pair_mean(dist), _pair_mean(tilt)
        loss, names = w_dist * t + w_tilt * r, ("coop/prior_dist", "coop/prior_tilt")
    else:
        raise ValueError(f"consistency mode must be gt or prior, got {mode!r}")
    return loss, {names[0]: t.detach(), names[1]: r.detach(), "coop/n_pairs": t.new_tensor(float(pairs.shape[0]))}


def pairwise_pose_consistency_loss(
    views: Views,
    preds: Views,
    *,
    mode: str = "gt",
    pose_t_weight: float = 1.0,
    pose_r_weight: float = 1.0,
    prior_dist_weight: float = 1.0,
    prior_tilt_weight: float = 1.0,
    max_dist: float = 70.0,
    max_tilt_deg: float = 10.0,
    robust: bool = False,
    robust_alpha: float = 0.5,
    robust_c: float = 1.0,
    batch: LossBatch | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Pairwise agent pose consistency (module docstring). Details: ``coop/pose_t``, ``coop/pose_r`` (gt mode) or
    ``coop/prior_dist``, ``coop/prior_tilt`` (prior mode), and ``coop/n_pairs`` (pairs per sample)."""
    batch = LossBatch.of(views, preds, batch)
    layout = _check(batch, PAIR_GT_VIEW_KEYS if mode == "gt" else RIG_VIEW_KEYS)
    return _pairwise_terms(views, implied_agent_poses(batch), layout, mode, pose_t_weight, pose_r_weight,
                           prior_dist_weight, prior_tilt_weight, max_dist, max_tilt_deg,
                           dict(robust=robust, alpha=robust_alpha, c=robust_c))


def _rig_terms(implied, layout, t_weight, r_weight, rob):
    others = [v for v in range(implied.shape[1]) if v not in layout.ref_view]
    refs = [layout.ref_view[layout.agent_of_view[v]] for v in others]
    A, A_ref = implied[:, others], implied[:, refs]
    t_err = torch.linalg.vector_norm(A[..., :3, 3] - A_ref[..., :3, 3], dim=-1)
    r_err = geodesic_angle(A[..., :3, :3], A_ref[..., :3, :3])
    t, r = _pair_mean(scalar_penalty(t_err, **rob)), _pair_mean(scalar_penalty(r_err, **rob))
    return t_weight * t + r_weight * r, {"coop/rig_t": t.detach(), "coop/rig_r": r.detach()}


def rig_consistency_loss(
    views: Views,
    preds: Views,
    *,
    t_weight: float = 1.0,
    r_weight: float = 1.0,
    robust: bool = False,
    robust_alpha: float = 0.5,
    robust_c: float = 1.0,
    batch: LossBatch | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Every camera of an agent must imply the vehicle pose its reference camera implies.

    Returns:
        loss = t_weight * coop/rig_t + r_weight * coop/rig_r (means over the non-reference cameras, 0 if none);
        details ``coop/rig_t`` (metres), ``coop/rig_r`` (radians).
    """
    batch = LossBatch.of(views, preds, batch)
    layout = _check(batch, RIG_VIEW_KEYS)
    return _rig_terms(implied_agent_poses(batch), layout, t_weight, r_weight,
                      dict(robust=robust, alpha=robust_alpha, c=robust_c))


class PairwisePoseConsistencyLoss(nn.Module):
    """Module form of :func:`pairwise_pose_consistency_loss`; holds only its :class:`ConsistencyConfig`."""

    def __init__(self, cfg: ConsistencyConfig):
        super().__init__()
        self.cfg = cfg

    def forward(self, views: Views, preds: Views, batch: LossBatch | None = None):
        c = self.cfg
        return pairwise_pose_consistency_loss(
            views, preds, mode=c.mode, pose_t_weight=c.pose_t_weight, pose_r_weight=c.pose_r_weight,
            prior_dist_weight=c.prior_dist_weight, prior_tilt_weight=c.prior_tilt_weight, max_dist=c.max_dist,
            max_tilt_deg=c.max_tilt_deg, robust=c.robust, robust_alpha=c.robust_alpha, robust_c=c.robust_c,
            batch=batch)


class CoopConsistencyLoss(nn.Module):
    """Pairwise + rig + box consistency with the weights of a :class:`ConsistencyConfig`.

    Terms whose weights are all 0 are skipped. Details: those of each term plus ``coop/n_agents``.
    """

    def __init__(self, cfg: ConsistencyConfig):
        super().__init__()
        self.cfg = cfg

    def forward(self, views: Views, preds: Views, batch: LossBatch | None = None):
        c = self.cfg
        batch = LossBatch.of(views, preds, batch)
        rob = dict(robust=c.robust, alpha=c.robust_alpha, c=c.robust_c)
        pair_w = (c.pose_t_weight, c.pose_r_weight) if c.mode == "gt" else (c.prior_dist_weight, c.prior_tilt_weight)
        rig_on = c.rig_t_weight > 0 or c.rig_r_weight > 0
        layout = _check(batch, PAIR_GT_VIEW_KEYS if c.mode == "gt" and max(pair_w) > 0 else RIG_VIEW_KEYS)
        loss = preds[0]["cam_trans"].new_zeros(())
        details = {"coop/n_agents": loss.new_tensor(float(layout.n_agents))}
        parts = []
        if max(pair_w) > 0 or rig_on:
            implied = implied_agent_poses(batch)  # shared by the pairwise and rig terms
            if max(pair_w) > 0:
                parts.append(_pairwise_terms(views, implied, layout, c.mode, c.pose_t_weight, c.pose_r_weight,
                                             c.prior_dist_weight, c.prior_tilt_weight, c.max_dist, c.max_tilt_deg, rob))
            if rig_on:
                parts.append(_rig_terms(implied, layout, c.rig_t_weight, c.rig_r_weight, rob))
        if c.box_weight > 0:
            box, d = box_consistency_loss(views, preds, batch)
            parts.append((c.box_weight * box, d))
        for part_loss, part_details in parts:
            loss = loss + part_loss
            details.update(part_details)
        return loss, details
