"""The base geometry loss: MapAnything-like scale-normalised geometry plus a metric scale term.

Ground truth is in the GT view-0 frame, predictions are re-expressed relative to the predicted view 0. Both sides
are normalised by their own mean point distance ``avg_dis`` (per sample, over the labelled pixels of all views),
so the geometry terms are scale-invariant and the metric scale is learnt only by ``base/scale``, which reaches only
``metric_scaling_factor``. Per pixel: ``rho(f(p^ / a^) - f(p / a))`` with ``f`` the signed log transform in log
space (identity otherwise) and ``rho`` the robust penalty (or the residual norm); per view mean, then the mean over
the views that have pixels.

``mask_aware=False`` is the naive behaviour: every pixel enters the point and depth terms, unlabelled ones with
target 0 (the view-0 origin / zero depth). ``mask_aware=True`` keeps only labelled pixels (depth > 0 and
valid_mask); those are gathered first, so the mask-aware terms cost little at full resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from coopmap.geometry import geodesic_angle, invert_pose
from coopmap.losses.batch import LossBatch
from coopmap.losses.config import BaseLossConfig, BaseWeights
from coopmap.losses.robust import norm_penalty, penalty, scalar_penalty, signed_log1p
from coopmap.losses.views import (
    Views,
    dot3,
    sample_mean,
    stack,
    transform_rows,
    view_mean,
)

#: batch-view keys the base loss reads (docs/views.md).
BASE_VIEW_KEYS = {
    "camera_pose": ("B", 4, 4),
    "pts3d": ("B", "H", "W", 3),
    "depthmap": ("B", "H", "W", 1),
    "depth_along_ray": ("B", "H", "W", 1),
    "ray_directions_cam": ("B", "H", "W", 3),
    "valid_mask": ("B", "H", "W"),
    "is_metric_scale": ("B",),
}
#: prediction keys it reads.
BASE_PRED_KEYS = {
    "pts3d": ("B", "H", "W", 3),
    "depth_along_ray": ("B", "H", "W", 1),
    "ray_directions": ("B", "H", "W", 3),
    "cam_quats": ("B", 4),
    "cam_trans": ("B", 3),
    "metric_scaling_factor": ("B", 1),
}


def _unlabelled_sums(preds, key, masks, T, scale, log_space, rob) -> torch.Tensor:
    """Naive mode: per (sample, view) sums of the penalty of unlabelled predictions against target 0. (B * V,).

    Only the norm of each (transformed, scaled) prediction matters: ``|R x + t|^2 = |x|^2 + 2 (R^T t) x + |t|^2``
    spares the full-resolution transform.
    """
    sums = []
    for p, m in zip(preds, masks):
        x = p[key].flatten(1, 2)  # (B, H*W, C)
        if T is None:
            sq = x.square().sum(-1)
        else:
            u = 2.0 * (T[:, :3, :3].transpose(-1, -2) @ T[:, :3, 3:])[:, None, :, 0]  # (B, 1, 3) = 2 R^T t
            sq = dot3(x, x + u, T[:, :3, 3].square().sum(-1, keepdim=True))  # |x|^2 + 2 (R^T t) x + |t|^2
        sq = sq.clamp_min(0.0) / scale[:, None].square()
        pen = norm_penalty(sq, rob["robust"], log_space, rob["alpha"], rob["c"])  # (B, H*W)
        sums.append(torch.where(m.flatten(1), torch.zeros_like(pen), pen).sum(-1))
    return torch.stack(sums, 1).reshape(-1)  # segment order b * V + v


def _pixel_term(pred, gt, pix, log_space, rob, naive_sums=None, n_pixels=0) -> torch.Tensor:
    """Per-view mean of the penalty over the labelled rows; in naive mode (``naive_sums`` given) plus the
    unlabelled pixels' sums, over every pixel."""
    if log_space:
        pred, gt = signed_log1p(pred), signed_log1p(gt)
    sums = pix.segment_sum(penalty(pred - gt, **rob))
    if naive_sums is None:
        return view_mean(sums, pix.counts())[0]
    return view_mean(sums + naive_sums, torch.full_like(pix.counts(), n_pixels))[0]


def _pose_terms(batch: LossBatch, pred_scale, gt_scale, rob):
    """(pose_t, pose_r): normalised translation and rotation error of views 1.. relative to view 0."""
    Tp, Tg = batch.pred_poses_rel0[:, 1:], batch.gt_poses_rel0[:, 1:].to(batch.pred_poses.dtype)
    if Tp.shape[1] == 0:
        zero = pred_scale.sum() * 0.0
        return zero, zero
    t_res = Tp[..., :3, 3] / pred_scale[:, None, None] - Tg[..., :3, 3] / gt_scale[:, None, None]
    angle = geodesic_angle(Tp[..., :3, :3], Tg[..., :3, :3])
    return penalty(t_res, **rob).mean(), scalar_penalty(angle, **rob).mean()


def _scale_term(views, preds, pred_scale, gt_scale, has_label, rob) -> torch.Tensor:
    """log of the predicted metric avg_dis over the GT one, with the gradient reaching only the scale factor."""
    s = stack(preds, "metric_scaling_factor")[..., 0]  # (B, V)
    log_pred = torch.log(pred_scale.detach())[:, None] - torch.log(s.detach()) + torch.log(s.clamp_min(1e-8))
    res = log_pred - torch.log(gt_scale)[:, None]
    use = (stack(views, "is_metric_scale").bool()[:, 0] & has_label)[:, None].expand_as(res)
    pen = torch.where(use, scalar_penalty(res, **rob), torch.zeros_like(res))
    return pen.sum() / use.sum().clamp_min(1)


def _rays_term(views, preds, rob) -> torch.Tensor:
    """Mean penalty of the ray directions over every pixel of every view."""
    total = sum(penalty(p["ray_directions"] - v["ray_directions_cam"], **rob).sum() for v, p in zip(views, preds))
    return total / (len(views) * preds[0]["ray_directions"][..., 0].numel())


def base_geometry_loss(
    views: Views,
    preds: Views,
    *,
    mask_aware: bool = False,
    log_space: bool = True,
    robust: bool = True,
    robust_alpha: float = 0.5,
    robust_c: float = 0.05,
    weights: BaseWeights | None = None,
    batch: LossBatch | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The base geometry loss over V views (see the module docstring).

    Args:
        views, preds: V dicts each (docs/views.md); keys :data:`BASE_VIEW_KEYS` and :data:`BASE_PRED_KEYS`.
        mask_aware: False = naive (unlabelled pixels count, target 0); True = labelled pixels only.
        weights: per-term weights (terms with weight 0 are skipped and not reported).
        batch: the criterion's shared :class:`LossBatch` of these views (optional).
    Returns:
        loss: 0-dim, ``sum_k weights.k * base/k``; details: ``base/<term>`` (unweighted, detached) and
        ``base/n_valid`` (labelled pixels in the batch).
    """
    batch = LossBatch.of(views, preds, batch)
    batch.check(BASE_VIEW_KEYS, BASE_PRED_KEYS)
    w = weights or BaseWeights()
    rob = dict(robust=robust, alpha=robust_alpha, c=robust_c)
    masks, pix = batch.labelled, batch.labelled_pixels
    B = masks[0].shape[0]
    T_gt = invert_pose(views[0]["camera_pose"])  # view 0 <- GT world
    T_pred = batch.pred_view0_inv  # view 0 <- predicted world
    gt_pts = transform_rows(T_gt.to(T_pred.dtype), batch.labelled_rows("views", "pts3d"), pix.sample)
    pred_pts = transform_rows(T_pred, batch.labelled_rows("preds", "pts3d"), pix.sample)
    gt_scale = sample_mean(gt_pts.norm(dim=-1), pix.sample, B, empty=1.0).clamp_min(1e-8)
    pred_scale = sample_mean(pred_pts.norm(dim=-1), pix.sample, B, empty=1.0).clamp_min(1e-8)
    a_gt, a_pred = gt_scale[pix.sample, None], pred_scale[pix.sample, None]
    terms: dict[str, torch.Tensor] = {}
    n_pix = masks[0][0].numel()
    if w.pts3d > 0:
        naive = None if mask_aware else _unlabelled_sums(preds, "pts3d", masks, T_pred, pred_scale, log_space, rob)
        terms["pts3d"] = _pixel_term(pred_pts / a_pred, gt_pts / a_gt, pix, log_space, rob, naive, n_pix)
    if w.depth > 0:
        naive = None if mask_aware else _unlabelled_sums(preds, "depth_along_ray", masks, None, pred_scale,
                                                         log_space, rob)
        d_pred = batch.labelled_rows("preds", "depth_along_ray") / a_pred
        d_gt = batch.labelled_rows("views", "depth_along_ray") / a_gt
        terms["depth"] = _pixel_term(d_pred, d_gt, pix, log_space, rob, naive, n_pix)
    if w.rays > 0:
        terms["rays"] = _rays_term(views, preds, rob)
    if w.pose_t > 0 or w.pose_r > 0:
        pose_t, pose_r = _pose_terms(batch, pred_scale, gt_scale, rob)
        terms.update({k: x for k, x in (("pose_t", pose_t), ("pose_r", pose_r)) if getattr(w, k) > 0})
    if w.scale > 0:
        has_label = torch.bincount(pix.sample, minlength=B) > 0
        terms["scale"] = _scale_term(views, preds, pred_scale, gt_scale, has_label, rob)
    loss = sum((getattr(w, k) * v for k, v in terms.items()), pred_pts.new_zeros(()))
    details = {f"base/{k}": v.detach() for k, v in terms.items()}
    details["base/n_valid"] = pred_pts.new_tensor(float(pix.segment.numel()))
    return loss, details


class BaseGeometryLoss(nn.Module):
    """Module form of :func:`base_geometry_loss`; holds only its :class:`BaseLossConfig`."""

    def __init__(self, cfg: BaseLossConfig):
        super().__init__()
        self.cfg = cfg

    def forward(self, views: Views, preds: Views, batch: LossBatch | None = None):
        c = self.cfg
        return base_geometry_loss(views, preds, mask_aware=c.mask_aware, log_space=c.log_space, robust=c.robust,
                                  robust_alpha=c.robust_alpha, robust_c=c.robust_c, weights=c.weights, batch=batch)
