"""Improvement 3: multi-vehicle consistency of the predicted poses (pairwise agents, rig) and the combined loss.

An agent's predicted pose is its reference camera's (camera0) predicted pose, relative to the predicted view 0,
composed with the known rig: ``A^_a = T^_view0_from_cam inv(T_agent_from_cam)``. Its GT is ``agent_pose``.

- Pairwise (``mode=gt``), over every pair i < j of agents (``torch.combinations``): ``T^_ij = inv(A^_i) A^_j``
  against ``T_ij = inv(A_i) A_j``: ``coop/pose_t`` = mean |t^_ij - t_ij| (metres), ``coop/pose_r`` = mean
  geodesic angle (radians). Unchanged when every predicted pose moves by the same rigid transform.
- Pairwise (``mode=prior``, no GT relative poses): ``coop/prior_dist`` = mean relu(|t^_ij| - max_dist) and
  ``coop/prior_tilt`` = mean relu(tilt^_ij - max_tilt), tilt = angle between the two vehicles' up axes.
- Pairwise prior with shared poses (``mode=prior``, ``prior_shared_*_weight`` > 0; the views' ``shared_agent_pose``
  and ``shared_pose_sigma``, docs/data.md): the predicted relative pose agrees with the shared one
  ``S_ij = inv(S_i) S_j`` within its noise: ``coop/prior_shared_t`` = mean relu(|t^_ij - t^S_ij| - k sigma_t,ij)
  with ``sigma_t,ij^2 = sigma_t,i^2 + sigma_t,j^2 + (|t^S_ij| sigma_r,i)^2`` (i's rotation error swings j by its
  distance) and ``coop/prior_shared_r`` = mean relu(angle(R^_ij, R^S_ij) - k sigma_r,ij),
  ``sigma_r,ij^2 = sigma_r,i^2 + sigma_r,j^2``. With perfect sharing (sigma 0) it is the plain error against the
  shared = GT relative poses. The gt mode is unchanged by pose inputs (the yaml's relative poses are its GT).
- Rig: every other camera of an agent implies the same vehicle pose as its reference camera: ``coop/rig_t``
  (metres), ``coop/rig_r`` (radians), means over those cameras.
- Boxes: :mod:`coopmap.losses.boxes`.
A sample with one agent has no pair: the pairwise terms are 0 and ``coop/n_pairs`` is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
SHARED_VIEW_KEYS = {"T_agent_from_cam": ("B", 4, 4), "shared_agent_pose": ("B", 4, 4), "shared_pose_sigma": ("B", 2)}


def implied_agent_poses(batch: LossBatch) -> torch.Tensor:
    """The vehicle pose each view implies: ``T^_view0_from_cam inv(T_agent_from_cam)``, relative to the predicted
    view 0. (B, V, 4, 4)."""
    T_cam = batch.pred_poses_rel0
    return T_cam @ invert_pose(stack(batch.views, "T_agent_from_cam").to(T_cam.dtype))


def agent_pairs(n_agents: int, device=None) -> torch.Tensor:
    """Every pair i < j of ``n_agents`` agents, (P, 2) int64, P = n (n - 1) / 2 (0 rows for one agent)."""
    pairs = [(i, j) for i in range(n_agents) for j in range(i + 1, n_agents)]
    return torch.tensor(pairs, dtype=torch.long, device=device).reshape(-1, 2)


def _check(batch: LossBatch, view_keys: dict) -> AgentLayout:
    batch.check(view_keys, PRED_POSE_KEYS)
    return batch.layout


@dataclass(frozen=True)
class _Links:
    """Pairs of view slots whose implied vehicle poses are compared, T_src^-1 T_dst: first every agent pair
    (reference views of agents i < j), then every rig link (an agent's reference view, another of its views).
    One list so the pairwise and rig terms share one batched computation."""

    src: list[int]
    dst: list[int]
    n_pairs: int

    @staticmethod
    def of(layout: AgentLayout, pairs: bool, rig: bool) -> _Links:
        ref = layout.ref_view
        n = layout.n_agents
        src = [ref[i] for i in range(n) for j in range(i + 1, n)] if pairs else []
        dst = [ref[j] for i in range(n) for j in range(i + 1, n)] if pairs else []
        n_pairs = len(src)
        if rig:
            others = [v for v in range(len(layout.agent_of_view)) if v not in ref]
            src += [ref[layout.agent_of_view[v]] for v in others]
            dst += others
        return _Links(src, dst, n_pairs)


def _link_poses(implied: torch.Tensor, links: _Links) -> torch.Tensor:
    """(B, K, 4, 4) predicted ``inv(A^_src) A^_dst`` of every link."""
    return invert_pose(implied[:, links.src]) @ implied[:, links.dst]


def _gt_link_targets(views, links: _Links, like: torch.Tensor) -> torch.Tensor:
    """(B, K, 4, 4) GT of every link: the GT relative pose for agent pairs (from ``agent_pose``), the identity for
    rig links (same vehicle)."""
    K, P = len(links.src), links.n_pairs
    target = torch.eye(4, dtype=like.dtype, device=like.device).expand(like.shape[0], K, 4, 4)
    if P:
        gt = stack([views[v] for v in links.src[:P] + links.dst[:P]], "agent_pose").to(like.dtype)
        target = torch.cat([invert_pose(gt[:, :P]) @ gt[:, P:], target[:, P:]], 1)
    return target


def _pose_errors(T: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K) translation (metres) and rotation (radians) differences of (B, K, 4, 4) poses from their targets."""
    t_err = torch.linalg.vector_norm(T[..., :3, 3] - target[..., :3, 3], dim=-1)
    return t_err, geodesic_angle(T[..., :3, :3], target[..., :3, :3])


def pairwise_pose_errors(views: Views, preds: Views) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair relative pose errors against the GT agent poses.

    Returns:
        t_err: (B, P) metres; r_err: (B, P) radians; pairs: (P, 2) agent indices (i < j).
    """
    batch = LossBatch(views, preds)
    layout = _check(batch, PAIR_GT_VIEW_KEYS)
    links = _Links.of(layout, pairs=True, rig=False)
    T = _link_poses(implied_agent_poses(batch), links)
    t_err, r_err = _pose_errors(T, _gt_link_targets(views, links, T))
    return t_err, r_err, agent_pairs(layout.n_agents, t_err.device)


def _prior_violations(T_pairs: torch.Tensor, max_dist: float, max_tilt_deg: float):
    """Hinges on (B, P, 4, 4) predicted relative agent poses: metres beyond ``max_dist``, radians of relative tilt
    (angle between the up axes) beyond ``max_tilt_deg``; (B, P) each."""
    dist = torch.linalg.vector_norm(T_pairs[..., :3, 3], dim=-1)
    tilt = torch.atan2(torch.linalg.vector_norm(T_pairs[..., :2, 2], dim=-1), T_pairs[..., 2, 2])
    return torch.relu(dist - max_dist), torch.relu(tilt - math.radians(max_tilt_deg))


def pairwise_prior_violations(views: Views, preds: Views, max_dist: float = 70.0, max_tilt_deg: float = 10.0):
    """Hinges on the predicted relative agent poses, without GT: (B, P) metres beyond ``max_dist`` and (B, P)
    radians of relative tilt (angle between the up axes) beyond ``max_tilt_deg``; and the (P, 2) pairs."""
    batch = LossBatch(views, preds)
    layout = _check(batch, RIG_VIEW_KEYS)
    T = _link_poses(implied_agent_poses(batch), _Links.of(layout, pairs=True, rig=False))
    return (*_prior_violations(T, max_dist, max_tilt_deg), agent_pairs(layout.n_agents, T.device))


def _shared_prior_violations(views, T_pairs: torch.Tensor, links: _Links, k: float):
    """Hinges of (B, P, 4, 4) predicted relative agent poses (the first P links) against the shared relative
    poses beyond k sigma (module docstring): (B, P) metres and (B, P) radians."""
    P = links.n_pairs
    slots = [views[v] for v in links.src[:P] + links.dst[:P]]
    S = stack(slots, "shared_agent_pose").to(T_pairs.dtype)
    sigma = stack(slots, "shared_pose_sigma").to(T_pairs.dtype)
    S_ij = invert_pose(S[:, :P]) @ S[:, P:]
    t_err, r_err = _pose_errors(T_pairs, S_ij)
    si, sj = sigma[:, :P], sigma[:, P:]
    lever = torch.linalg.vector_norm(S_ij[..., :3, 3], dim=-1) * si[..., 1]
    tol_t = k * torch.sqrt(si[..., 0] ** 2 + sj[..., 0] ** 2 + lever ** 2)
    tol_r = k * torch.sqrt(si[..., 1] ** 2 + sj[..., 1] ** 2)
    return torch.relu(t_err - tol_t), torch.relu(r_err - tol_r)


def shared_prior_violations(views: Views, preds: Views, k: float = 3.0):
    """The prior with shared poses, per pair: (B, P) metres and (B, P) radians beyond k sigma; and the (P, 2)
    pairs."""
    batch = LossBatch(views, preds)
    layout = _check(batch, SHARED_VIEW_KEYS)
    links = _Links.of(layout, pairs=True, rig=False)
    T = _link_poses(implied_agent_poses(batch), links)
    return (*_shared_prior_violations(views, T, links, k), agent_pairs(layout.n_agents, T.device))


def _shared_on(w: ConsistencyConfig) -> bool:
    return w.mode == "prior" and (w.prior_shared_t_weight > 0 or w.prior_shared_r_weight > 0)


def _pair_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of (B, P) values, 0 when P = 0."""
    return x.sum() / max(x.numel(), 1)


def _link_terms(views, implied, layout: AgentLayout, w: ConsistencyConfig, pairs: bool, rig: bool):
    """The pairwise and/or rig terms (``pairs``, ``rig``) from one batched link computation, weighted and
    penalised as ``w`` says: (loss, details)."""
    rob = dict(robust=w.robust, alpha=w.robust_alpha, c=w.robust_c)
    links = _Links.of(layout, pairs, rig)
    P = links.n_pairs
    T = _link_poses(implied, links)
    shared = None
    if pairs and w.mode == "prior":  # the pair links are hinged; only the rig links have a target (the identity)
        dist, tilt = _prior_violations(T[:, :P], w.max_dist, w.max_tilt_deg)
        pair_t, pair_r = _pair_mean(dist), _pair_mean(tilt)
        if _shared_on(w):
            shared = [_pair_mean(x) for x in _shared_prior_violations(views, T[:, :P], links, w.prior_shared_k)]
        T, first_rig = T[:, P:], 0
        target = torch.eye(4, dtype=T.dtype, device=T.device).expand_as(T)
    else:
        target, first_rig = _gt_link_targets(views, links, T), P
    t_err, r_err = _pose_errors(T, target)
    t_pen, r_pen = scalar_penalty(t_err, **rob), scalar_penalty(r_err, **rob)
    if pairs and w.mode == "gt":
        pair_t, pair_r = _pair_mean(t_pen[:, :P]), _pair_mean(r_pen[:, :P])
    loss = implied.new_zeros(())
    details: dict[str, torch.Tensor] = {}
    if pairs:
        names, weights = (("coop/pose_t", "coop/pose_r"), (w.pose_t_weight, w.pose_r_weight)) if w.mode == "gt" \
            else (("coop/prior_dist", "coop/prior_tilt"), (w.prior_dist_weight, w.prior_tilt_weight))
        loss = loss + weights[0] * pair_t + weights[1] * pair_r
        details.update({names[0]: pair_t.detach(), names[1]: pair_r.detach(),
                        "coop/n_pairs": loss.new_tensor(float(P))})
        if shared is not None:
            loss = loss + w.prior_shared_t_weight * shared[0] + w.prior_shared_r_weight * shared[1]
            details.update({"coop/prior_shared_t": shared[0].detach(), "coop/prior_shared_r": shared[1].detach()})
    if rig:
        rig_t, rig_r = _pair_mean(t_pen[:, first_rig:]), _pair_mean(r_pen[:, first_rig:])
        loss = loss + w.rig_t_weight * rig_t + w.rig_r_weight * rig_r
        details.update({"coop/rig_t": rig_t.detach(), "coop/rig_r": rig_r.detach()})
    return loss, details


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
    prior_shared_t_weight: float = 0.0,
    prior_shared_r_weight: float = 0.0,
    prior_shared_k: float = 3.0,
    batch: LossBatch | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Pairwise agent pose consistency (module docstring). Details: ``coop/pose_t``, ``coop/pose_r`` (gt mode) or
    ``coop/prior_dist``, ``coop/prior_tilt`` (prior mode; with shared poses also ``coop/prior_shared_t``,
    ``coop/prior_shared_r``), and ``coop/n_pairs`` (pairs per sample)."""
    batch = LossBatch.of(views, preds, batch)
    w = ConsistencyConfig(mode, pose_t_weight, pose_r_weight, prior_dist_weight, prior_tilt_weight, max_dist,
                          max_tilt_deg, robust=robust, robust_alpha=robust_alpha, robust_c=robust_c,
                          prior_shared_t_weight=prior_shared_t_weight, prior_shared_r_weight=prior_shared_r_weight,
                          prior_shared_k=prior_shared_k)
    layout = _check(batch, PAIR_GT_VIEW_KEYS if mode == "gt" else SHARED_VIEW_KEYS if _shared_on(w) else RIG_VIEW_KEYS)
    return _link_terms(views, implied_agent_poses(batch), layout, w, pairs=True, rig=False)


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
    w = ConsistencyConfig(rig_t_weight=t_weight, rig_r_weight=r_weight, robust=robust, robust_alpha=robust_alpha,
                          robust_c=robust_c)
    return _link_terms(views, implied_agent_poses(batch), layout, w, pairs=False, rig=True)


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
            prior_shared_t_weight=c.prior_shared_t_weight, prior_shared_r_weight=c.prior_shared_r_weight,
            prior_shared_k=c.prior_shared_k, batch=batch)


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
        pair_w = (c.pose_t_weight, c.pose_r_weight) if c.mode == "gt" else (
            c.prior_dist_weight, c.prior_tilt_weight, c.prior_shared_t_weight, c.prior_shared_r_weight)
        pairs_on, rig_on = max(pair_w) > 0, c.rig_t_weight > 0 or c.rig_r_weight > 0
        layout = _check(batch, PAIR_GT_VIEW_KEYS if c.mode == "gt" and pairs_on
                        else SHARED_VIEW_KEYS if _shared_on(c) else RIG_VIEW_KEYS)
        loss = preds[0]["cam_trans"].new_zeros(())
        details = {"coop/n_agents": loss.new_tensor(float(layout.n_agents))}
        parts = []
        if pairs_on or rig_on:  # one batched computation for both
            parts.append(_link_terms(views, implied_agent_poses(batch), layout, c, pairs_on, rig_on))
        if c.box_weight > 0:
            box, d = box_consistency_loss(views, preds, batch)
            parts.append((c.box_weight * box, d))
        for part_loss, part_details in parts:
            loss = loss + part_loss
            details.update(part_details)
        return loss, details
