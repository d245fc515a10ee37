"""Improvement 2: scale and pose distillation from the frozen pretrained model (the teacher).

The teacher's per-view outputs travel in the batch views (MapAnything forwards no extra arguments to losses), as
the keys :data:`TEACHER_QUATS_KEY`, :data:`TEACHER_TRANS_KEY`, :data:`TEACHER_SCENE_SCALE_KEY`, written by the
online teacher or read from the teacher cache. They are detached here. With ``tau`` the temperature and ``rho`` the
robust penalty (or ``|x|`` with ``robust=False``), over the selected views (all, or the ego's: ``agent_index == 0``):

- ``distill/scale``: mean over samples of ``rho((log S^ - log S_T) / tau)``, S = the **metric scene scale**: the mean
  metric distance along the ray ``|pts3d_cam|`` over the labelled pixels (``depthmap > 0`` and ``valid_mask``) of
  the selected views, the same pixels for student and teacher. S = s x (the mean distance of the up-to-scale
  points), so it is what the base loss pins (s x avg_dis) and is invariant to how a model splits it between its
  ``metric_scaling_factor`` s and its up-to-scale output; ``s`` alone is not identifiable (in the demo the
  student's s went from 1.6 to ~63 while its metric output stayed sane). Samples without a labelled pixel in the
  selected views are left out;
- ``distill/trans``: mean ``rho(|t^_0v - t_T,0v| / tau)``, translations (metres) of the camera poses re-expressed
  relative to each model's own view 0 (views 1..);
- ``distill/rot``: mean ``rho(angle(R^_0v, R_T,0v) / tau)``, the geodesic angle (radians) of those rotations.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from coopmap.errors import ConfigError
from coopmap.geometry import geodesic_angle, invert_pose, pose_from_quat_trans
from coopmap.losses.batch import LossBatch
from coopmap.losses.config import DistillConfig
from coopmap.losses.robust import robust_penalty, robust_penalty_sq, safe_sqrt
from coopmap.losses.views import Views, stack

#: teacher camera rotation, (B, 4) XYZW, cam2world in the teacher's predicted view-0 frame.
TEACHER_QUATS_KEY = "teacher_cam_quats"
#: teacher camera translation, (B, 3) metres, same frame.
TEACHER_TRANS_KEY = "teacher_cam_trans"
#: teacher metric scaling factor s, (B, 1): a diagnostic only (``distill/s_abs_log``), not a target.
TEACHER_SCALE_KEY = "teacher_metric_scale"
#: teacher metric scene scale of the view, (B, 1) metres: its mean |pts3d_cam| over the view's labelled pixels
#: (0 without any), see :func:`view_scene_scale`.
TEACHER_SCENE_SCALE_KEY = "teacher_scene_scale"
#: the teacher keys the loss needs, with their shapes (per view dict).
TEACHER_KEYS = {TEACHER_QUATS_KEY: ("B", 4), TEACHER_TRANS_KEY: ("B", 3), TEACHER_SCENE_SCALE_KEY: ("B", 1)}
STUDENT_KEYS = {"cam_quats": ("B", 4), "cam_trans": ("B", 3), "metric_scaling_factor": ("B", 1),
                "pts3d_cam": ("B", "H", "W", 3)}
LABEL_KEYS = {"depthmap": ("B", "H", "W", 1), "valid_mask": ("B", "H", "W")}


def view_scene_scale(view, pred) -> torch.Tensor:
    """(B, 1) the metric scene scale of one view: mean ``|pts3d_cam|`` (metres) over its labelled pixels
    (``depthmap > 0`` and ``valid_mask``), 0 where it has none. What the teacher stores per view; the loss combines
    the views weighted by their labelled-pixel counts, which is the mean over all their labelled pixels."""
    labelled = (view["depthmap"][..., 0] > 0) & view["valid_mask"].bool()
    dist = torch.linalg.vector_norm(pred["pts3d_cam"], dim=-1)
    n = labelled.sum((-1, -2))
    return (torch.where(labelled, dist, torch.zeros_like(dist)).sum((-1, -2)) / n.clamp_min(1))[:, None]


def _selected_views(batch: LossBatch, which: str) -> list[int]:
    if which == "all":
        return list(range(len(batch.views)))
    if which == "ego":
        return [v for v, a in enumerate(batch.layout.agent_of_view) if a == 0]
    raise ValueError(f"distillation views must be all or ego, got {which!r}")


def _poses_rel0(quats: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    T = pose_from_quat_trans(quats, trans)  # (B, V, 4, 4)
    return invert_pose(T[:, :1]) @ T


def _scene_log_ratio(batch: LossBatch, pick, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) log S^ - log S_T over the selected views' labelled pixels, and (B,) bool: the sample has some."""
    pix = batch.labelled_pixels
    B, V = batch.views[0]["depthmap"].shape[0], len(batch.views)
    dist = safe_sqrt(batch.labelled_rows("preds", "pts3d_cam").square().sum(-1))
    sums = pix.segment_sum(dist).view(B, V)[:, pick]
    counts = pix.counts().view(B, V)[:, pick].to(dtype)
    n = counts.sum(1)
    has = n > 0
    with torch.no_grad():
        teacher = (stack(batch.views, TEACHER_SCENE_SCALE_KEY)[:, pick, 0].to(dtype) * counts).sum(1)
        log_teacher = torch.log((teacher / n.clamp_min(1)).clamp_min(1e-8))
    student = sums.sum(1) / n.clamp_min(1)
    return torch.log(student.clamp_min(1e-8)) - log_teacher, has


def scale_distill_loss(
    views: Views,
    preds: Views,
    *,
    scale_weight: float = 1.0,
    trans_weight: float = 1.0,
    rot_weight: float = 1.0,
    tau: float = 1.0,
    robust: bool = True,
    robust_alpha: float = 0.5,
    robust_c: float = 1.0,
    which_views: str = "all",
    batch: LossBatch | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Distillation of the metric scene scale and the relative camera poses (see the module docstring).

    Returns:
        loss: 0-dim ``scale_weight * distill/scale + trans_weight * distill/trans + rot_weight * distill/rot``;
        details: those three terms, the raw mean errors ``distill/scale_abs_log`` (|log S^ - log S_T|),
        ``distill/trans_m``, ``distill/rot_rad``, ``distill/n_views`` and ``distill/s_abs_log`` (|log s^ - log s_T|:
        how differently the two split their scale, not a loss; NaN when the views lack the teacher's s).
        Raises ConfigError when the views lack the teacher keys.
    """
    batch = LossBatch.of(views, preds, batch)
    if any(k not in views[0] for k in TEACHER_KEYS):
        raise ConfigError(f"distillation is on but the views lack the teacher keys {sorted(TEACHER_KEYS)}: "
                          "configure an online teacher or a teacher cache (rebuild a cache made before "
                          f"'{TEACHER_SCENE_SCALE_KEY}' existed), or set loss.scale_distill_weight=0")
    batch.check({**TEACHER_KEYS, **LABEL_KEYS}, STUDENT_KEYS)
    sel = _selected_views(batch, which_views)
    pick = slice(None) if len(sel) == len(views) else sel  # all views: no gather
    rest = slice(1, None) if len(sel) == len(views) else sel[1:]  # the selected views but view 0
    T_s = batch.pred_poses_rel0[:, rest]
    with torch.no_grad():  # the teacher's side
        T_t = _poses_rel0(stack(views, TEACHER_QUATS_KEY).to(T_s.dtype),
                          stack(views, TEACHER_TRANS_KEY).to(T_s.dtype))[:, rest]
    log_ratio, has = _scene_log_ratio(batch, pick, T_s.dtype)
    # rho(x / tau) with scale c is rho(x) with scale c tau (rho depends on (x / c)^2 only): no division ops
    c_tau = robust_c * tau
    zero = log_ratio.sum() * 0.0
    n_has = has.sum().clamp_min(1)
    scale_pen = robust_penalty(log_ratio, robust_alpha, c_tau) if robust else log_ratio.abs() / tau
    scale = torch.where(has, scale_pen, torch.zeros_like(scale_pen)).sum() / n_has
    scale_abs_log = torch.where(has, log_ratio.detach().abs(), torch.zeros_like(log_ratio)).sum() / n_has
    t_err_sq = (T_s[..., :3, 3] - T_t[..., :3, 3]).square().sum(-1)
    angle = geodesic_angle(T_s[..., :3, :3], T_t[..., :3, :3])
    if T_s.shape[1] > 0:
        if robust:
            trans = robust_penalty_sq(t_err_sq, robust_alpha, c_tau).mean()
            rot = robust_penalty(angle, robust_alpha, c_tau).mean()
        else:
            trans, rot = safe_sqrt(t_err_sq).mean() / tau, angle.mean() / tau
        trans_m, rot_rad = t_err_sq.detach().sqrt().mean(), angle.detach().mean()
    else:
        trans = rot = trans_m = rot_rad = zero
    loss = scale_weight * scale + trans_weight * trans + rot_weight * rot
    details = {
        "distill/scale": scale.detach(),
        "distill/trans": trans.detach(),
        "distill/rot": rot.detach(),
        "distill/scale_abs_log": scale_abs_log,
        "distill/trans_m": trans_m.detach(),
        "distill/rot_rad": rot_rad.detach(),
        "distill/n_views": log_ratio.new_tensor(float(len(sel))),
    }
    details["distill/s_abs_log"] = log_ratio.new_tensor(math.nan).detach()
    if TEACHER_SCALE_KEY in views[0]:
        with torch.no_grad():
            s_log = (torch.log(stack(preds, "metric_scaling_factor")[:, pick, 0].clamp_min(1e-8))
                     - torch.log(stack(views, TEACHER_SCALE_KEY)[:, pick, 0].to(T_s.dtype).clamp_min(1e-8)))
            details["distill/s_abs_log"] = s_log.abs().mean()
    return loss, details


class ScaleDistillLoss(nn.Module):
    """Module form of :func:`scale_distill_loss`; holds only its :class:`DistillConfig`."""

    def __init__(self, cfg: DistillConfig):
        super().__init__()
        self.cfg = cfg

    def forward(self, views: Views, preds: Views, batch: LossBatch | None = None):
        c = self.cfg
        return scale_distill_loss(views, preds, scale_weight=c.scale_weight, trans_weight=c.trans_weight,
                                  rot_weight=c.rot_weight, tau=c.tau, robust=c.robust, robust_alpha=c.robust_alpha,
                                  robust_c=c.robust_c, which_views=c.views, batch=batch)
