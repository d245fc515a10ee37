"""Improvement 1: a mask-aware metric depth loss and a height prior on the unlabelled pixels.

OPV2V's depth labels are sparse LiDAR returns (2-3.5 % of pixels, none in the top half of the image). The naive
loss (``mask_aware=False``) treats every unlabelled pixel as depth 0, pulling the model toward the camera. Here:

- ``depth/main``: per view ``sum(m |z^ - z|) / max(sum(m), 1)`` (or the robust penalty), m = labelled pixels
  (``depthmap > 0`` and ``valid_mask``), averaged over the views that have labels; metres, z-depth along the optical
  axis (``pts3d_cam[..., 2]`` against ``depthmap``). A batch without labels gives 0, never NaN.
- ``height/penalty``: the predicted points of **every unlabelled pixel** (no depth GT: ``depthmap == 0`` or not
  ``valid_mask``), sky included, lifted into the **ego vehicle frame** (z up, ground ~ 0):
  ``mean(relu(z - z_max) [+ relu(z_min - z)])``, linear above ``z_max`` and 0 below it. The views'
  ``non_ambiguous_mask`` plays no part: on synthetic scenes it marks the dense GT's sky, which is exactly where the
  floating layer forms, and real OPV2V has no such mask, so the prior must act on the same pixels on both.
"""

from __future__ import annotations

import torch
from torch import nn

from coopmap.losses.batch import LossBatch
from coopmap.losses.config import DepthLossConfig
from coopmap.losses.robust import robust_penalty
from coopmap.losses.views import Views, stack, view_mean

#: keys of the depth term.
DEPTH_VIEW_KEYS = {"depthmap": ("B", "H", "W", 1), "valid_mask": ("B", "H", "W")}
DEPTH_PRED_KEYS = {"pts3d_cam": ("B", "H", "W", 3)}
#: keys of the height prior.
HEIGHT_VIEW_KEYS = {**DEPTH_VIEW_KEYS, "T_ego_from_cam": ("B", 4, 4)}
HEIGHT_PRED_KEYS = {"pts3d": ("B", "H", "W", 3), "pts3d_cam": ("B", "H", "W", 3), "cam_quats": ("B", 4),
                    "cam_trans": ("B", 3)}


def _naive_depth_sums(preds, masks, robust, alpha, c) -> tuple[torch.Tensor, torch.Tensor]:
    """Naive mode: per (sample, view) sums of |z^| (and rho(z^)) over unlabelled pixels (target 0). (B * V,) x 2."""
    l1, rho = [], []
    for p, m in zip(preds, masks):
        z = p["pts3d_cam"][..., 2]
        zero = torch.zeros_like(z)
        l1.append(torch.where(m, zero, z.abs()).sum((-1, -2)))
        if robust:
            rho.append(torch.where(m, zero, robust_penalty(z, alpha, c)).sum((-1, -2)))
    l1_sums = torch.stack(l1, 1).reshape(-1)
    return l1_sums, (torch.stack(rho, 1).reshape(-1) if robust else l1_sums)


def masked_depth_loss(
    views: Views,
    preds: Views,
    *,
    mask_aware: bool = True,
    robust: bool = False,
    robust_alpha: float = 0.5,
    robust_c: float = 0.5,
    batch: LossBatch | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Metric z-depth loss on labelled pixels (``mask_aware``) or on every pixel with target 0 there (naive).

    Returns:
        loss: 0-dim metres (L1) or robust units; details ``depth/main`` (= loss), ``depth/l1`` (mean absolute
        error in metres on the same pixels), ``depth/n_valid`` (labelled pixels), ``depth/empty_views``
        ((sample, view) pairs without a label).
    """
    batch = LossBatch.of(views, preds, batch)
    batch.check(DEPTH_VIEW_KEYS, DEPTH_PRED_KEYS)
    masks, pix = batch.labelled, batch.labelled_pixels
    res = batch.labelled_rows("preds", "pts3d_cam")[:, 2] - batch.labelled_rows("views", "depthmap")[:, 0]
    l1_sums = pix.segment_sum(res.abs())
    main_sums = pix.segment_sum(robust_penalty(res, robust_alpha, robust_c)) if robust else l1_sums
    counts = pix.counts()
    n = counts
    if not mask_aware:
        naive_l1, naive_main = _naive_depth_sums(preds, masks, robust, robust_alpha, robust_c)
        l1_sums, main_sums = l1_sums + naive_l1, main_sums + naive_main
        n = torch.full_like(counts, masks[0][0].numel())
    l1, empty = view_mean(l1_sums, n)
    main = view_mean(main_sums, n)[0] if robust else l1
    details = {
        "depth/main": main.detach(),
        "depth/l1": l1.detach(),
        "depth/n_valid": res.new_tensor(float(res.numel())),
        "depth/empty_views": (counts == 0).sum().to(res.dtype),
    }
    return main, details


def _height_rows(views: Views, preds: Views, frame: str, batch: LossBatch | None):
    """Per view, the predicted points to lift ((B, H, W, 3) each: ``pts3d`` or ``pts3d_cam``), and the z row of
    T_ego_from_<their frame>: (B, 4) shared by every view (``pred``) or (B, V, 4) per view (``gt_rig``)."""
    if frame == "pred":
        T0_inv = LossBatch.of(views, preds, batch).pred_view0_inv
        row = (views[0]["T_ego_from_cam"].to(T0_inv.dtype) @ T0_inv)[:, 2]  # ego <- predicted world, (B, 4)
        return [p["pts3d"] for p in preds], row
    if frame == "gt_rig":
        pts = [p["pts3d_cam"] for p in preds]
        return pts, stack(views, "T_ego_from_cam")[:, :, 2].to(pts[0].dtype)
    raise ValueError(f"height frame must be pred or gt_rig, got {frame!r}")


def _batched(pts: torch.Tensor, row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, V, N, 3) points and (B, 4) or (B, V, 4) rows as G GEMM groups: (G, M, 3) points and (G, 4) rows. One
    row per sample gives B groups of (V N, 3) (2.7x faster than B V smaller ones at 12 x 518x392, CPU)."""
    rows = row.reshape(-1, 4)
    return pts.reshape(rows.shape[0], -1, 3), rows


def _lift(pts: torch.Tensor, row: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
    """``row[:3] . p + row[3] - offset`` for (B, V, N, 3) points and (B, 4) or (B, V, 4) rows -> (B, V, N): one
    batched GEMM (its backward allocates the points' gradient once)."""
    g_pts, rows = _batched(pts, row)
    return torch.baddbmm((rows[:, 3] - offset)[:, None, None], g_pts, rows[:, :3, None]).view(pts.shape[:-1])


def ego_heights(views: Views, preds: Views, frame: str = "pred", batch: LossBatch | None = None) -> torch.Tensor:
    """Height (z, metres, ego vehicle frame) of every predicted point. (B, V, H * W).

    ``pred``: ``T_ego_from_cam[view 0] inv(T^_view0) pts3d`` (the predicted pose chain through view 0);
    ``gt_rig``: ``T_ego_from_cam[v] pts3d_cam[v]`` (each view's own GT rig transform).
    """
    pts, row = _height_rows(views, preds, frame, batch)
    return _lift(torch.stack(pts, 1).flatten(2, 3), row)


class _HeightHinge(torch.autograd.Function):
    """``sum(unl (relu(z - z_max) + relu(z_min - z)))`` with ``z = row[:3] . p + row[3]``, and its gradient
    written out: the slope per pixel is +1 above ``z_max``, -1 below ``z_min`` (when given), 0 elsewhere, so
    ``d/dp = slope row[:3]`` and ``d/drow = sum slope [p, 1]``.

    Versus the same expression in autograd ops (measured, tiny-model batch): one node instead of ~15, no
    clamp/where passes in the backward, and the V views' gradients come out of one (B, V, N, 3) tensor.
    Inputs: ``row`` (B, 4) or (B, V, 4), ``unl`` (B, V, N) bool, then the V per-view point tensors (B, H, W, 3).
    Outputs: the sum (0-dim) and, not differentiable, the number of pixels above ``z_max``.
    """

    @staticmethod
    def forward(ctx, row, unl, z_max, z_min, *pts_views):
        pts = torch.stack(pts_views, 1).flatten(2, 3)  # (B, V, N, 3)
        z = _lift(pts, row)
        above = (z > z_max) & unl
        slope = above.to(pts.dtype)
        total = ((z - z_max) * slope).sum()
        if z_min is not None:
            below = (z < z_min) & unl
            total = total + ((z_min - z) * below).sum()
            slope = slope - below.to(pts.dtype)
        ctx.save_for_backward(row, slope, pts)
        ctx.shape = pts_views[0].shape
        n_above = above.sum()
        ctx.mark_non_differentiable(n_above)
        return total, n_above

    @staticmethod
    def backward(ctx, grad_total, _grad_count):
        row, slope, pts = ctx.saved_tensors
        gz = slope * grad_total  # (B, V, N)
        grad_row = None
        if ctx.needs_input_grad[0]:  # per GEMM group: sum over its pixels of gz [p, 1]
            g_pts, rows = _batched(pts, row)
            g_gz = gz.reshape(rows.shape[0], 1, -1)
            grad_row = torch.cat([torch.bmm(g_gz, g_pts)[:, 0], g_gz.sum(-1)], -1).view(row.shape)
        grad_pts: tuple[torch.Tensor | None, ...] = (None,) * pts.shape[1]
        if any(ctx.needs_input_grad[4:]):
            r3 = row[:, None, None, :3] if row.dim() == 2 else row[:, :, None, :3]
            grad_pts = tuple(g.view(ctx.shape) for g in (gz[..., None] * r3).unbind(1))
        return (grad_row, None, None, None, *grad_pts)


def height_prior_loss(
    views: Views,
    preds: Views,
    *,
    z_max: float = 4.0,
    z_min: float | None = None,
    frame: str = "pred",
    batch: LossBatch | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Height prior on every unlabelled pixel: ``mean(relu(z - z_max) [+ relu(z_min - z)])``.

    Unlabelled = not (``depthmap > 0`` and ``valid_mask``); the views' ``non_ambiguous_mask`` is ignored (sky
    pixels are penalised like any other pixel without depth GT).

    Returns:
        loss: 0-dim metres (0 when there is no such pixel); details ``height/penalty`` (= loss),
        ``height/n_pixels`` (pixels it averages over), ``height/frac_above`` (share of them above ``z_max``).
    """
    batch = LossBatch.of(views, preds, batch)
    batch.check(HEIGHT_VIEW_KEYS, HEIGHT_PRED_KEYS)
    pts, row = _height_rows(views, preds, frame, batch)
    with torch.no_grad():
        labelled = torch.stack(batch.labelled, 1).flatten(2)  # (B, V, H*W)
        unl = ~labelled
        n_pixels = unl.sum().to(pts[0].dtype)
    total, above = _HeightHinge.apply(row, unl, float(z_max), None if z_min is None else float(z_min), *pts)
    loss = total / n_pixels.clamp_min(1)
    frac = above.to(loss.dtype) / n_pixels.clamp_min(1)
    return loss, {"height/penalty": loss.detach(), "height/n_pixels": n_pixels, "height/frac_above": frac}


class DepthLoss(nn.Module):
    """``depth_weight * depth/main + height_weight * height/penalty`` from a :class:`DepthLossConfig`.

    A term whose weight is 0 is not computed and not reported.
    """

    def __init__(self, cfg: DepthLossConfig):
        super().__init__()
        self.cfg = cfg

    def forward(self, views: Views, preds: Views, batch: LossBatch | None = None):
        c = self.cfg
        batch = LossBatch.of(views, preds, batch)
        loss = preds[0]["pts3d_cam"].new_zeros(())
        details: dict[str, torch.Tensor] = {}
        if c.depth_weight > 0:
            main, d = masked_depth_loss(views, preds, mask_aware=c.mask_aware, robust=c.robust,
                                        robust_alpha=c.robust_alpha, robust_c=c.robust_c, batch=batch)
            loss, details = loss + c.depth_weight * main, {**details, **d}
        if c.height_weight > 0:
            height, d = height_prior_loss(views, preds, z_max=c.z_max, z_min=c.z_min, frame=c.height_frame,
                                          batch=batch)
            loss, details = loss + c.height_weight * height, {**details, **d}
        return loss, details
