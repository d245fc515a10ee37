"""Improvement 2: scale and pose distillation from the frozen pretrained model (the teacher).

The teacher's per-view outputs travel in the batch views (MapAnything forwards no extra arguments to losses), as
the keys :data:`TEACHER_QUATS_KEY`, :data:`TEACHER_TRANS_KEY`, :data:`TEACHER_SCALE_KEY`, written by the online
teacher or read from the teacher cache. They are detached here. With ``tau`` the temperature and ``rho`` the robust
penalty, over the selected views (all, or the ego's: ``agent_index == 0``):

- ``distill/scale``: mean ``rho((log s^ - log s_T) / tau)``;
- ``distill/trans``: mean ``rho(|t^_0v - t_T,0v| / tau)``, translations (metres) of the camera poses re-expressed
  relative to each model's own view 0 (views 1..);
- ``distill/rot``: mean ``rho(angle(R^_0v, R_T,0v) / tau)``, the geodesic angle (radians) of those rotations.
"""

from __future__ import annotations

import torch
from torch import nn

from coopmap.errors import ConfigError
from coopmap.geometry import geodesic_angle, invert_pose, pose_from_quat_trans
from coopmap.losses.batch import LossBatch
from coopmap.losses.config import DistillConfig
from coopmap.losses.robust import robust_penalty, robust_penalty_sq
from coopmap.losses.views import Views, stack

#: teacher camera rotation, (B, 4) XYZW, cam2world in the teacher's predicted view-0 frame.
TEACHER_QUATS_KEY = "teacher_cam_quats"
#: teacher camera translation, (B, 3) metres, same frame.
TEACHER_TRANS_KEY = "teacher_cam_trans"
#: teacher metric scaling factor, (B, 1).
TEACHER_SCALE_KEY = "teacher_metric_scale"
#: every teacher key with its shape (per view dict).
TEACHER_KEYS = {TEACHER_QUATS_KEY: ("B", 4), TEACHER_TRANS_KEY: ("B", 3), TEACHER_SCALE_KEY: ("B", 1)}
STUDENT_KEYS = {"cam_quats": ("B", 4), "cam_trans": ("B", 3), "metric_scaling_factor": ("B", 1)}


def _selected_views(batch: LossBatch, which: str) -> list[int]:
    if which == "all":
        return list(range(len(batch.views)))
    if which == "ego":
        return [v for v, a in enumerate(batch.layout.agent_of_view) if a == 0]
    raise ValueError(f"distillation views must be all or ego, got {which!r}")


def _poses_rel0(quats: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    T = pose_from_quat_trans(quats, trans)  # (B, V, 4, 4)
    return invert_pose(T[:, :1]) @ T


def scale_distill_loss(
    views: Views,
    preds: Views,
    *,
    scale_weight: float = 1.0,
    trans_weight: float = 1.0,
    rot_weight: float = 1.0,
    tau: float = 1.0,
    robust_alpha: float = 0.5,
    robust_c: float = 1.0,
    which_views: str = "all",
    batch: LossBatch | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Distillation of the metric scale and the relative camera poses (see the module docstring).

    Returns:
        loss: 0-dim ``scale_weight * distill/scale + trans_weight * distill/trans + rot_weight * distill/rot``;
        details: those three terms, the raw mean errors ``distill/scale_abs_log``, ``distill/trans_m``,
        ``distill/rot_rad`` and ``distill/n_views``. Raises ConfigError when the views lack the teacher keys.
    """
    batch = LossBatch.of(views, preds, batch)
    if any(k not in views[0] for k in TEACHER_KEYS):
        raise ConfigError(f"distillation is on but the views lack the teacher keys {sorted(TEACHER_KEYS)}: "
                          "configure an online teacher or a teacher cache (or set loss.scale_distill_weight=0)")
    batch.check(TEACHER_KEYS, STUDENT_KEYS)
    sel = _selected_views(batch, which_views)
    pick = slice(None) if len(sel) == len(views) else sel  # all views: no gather
    rest = slice(1, None) if len(sel) == len(views) else sel[1:]  # the selected views but view 0
    s_student = stack(preds, "metric_scaling_factor")[:, pick, 0]
    T_s = batch.pred_poses_rel0[:, rest]
    with torch.no_grad():  # the teacher's side
        log_teacher = torch.log(stack(views, TEACHER_SCALE_KEY)[:, pick, 0].to(s_student.dtype).clamp_min(1e-8))
        T_t = _poses_rel0(stack(views, TEACHER_QUATS_KEY).to(T_s.dtype),
                          stack(views, TEACHER_TRANS_KEY).to(T_s.dtype))[:, rest]
    log_ratio = torch.log(s_student.clamp_min(1e-8)) - log_teacher
    # rho(x / tau) with scale c is rho(x) with scale c tau (rho depends on (x / c)^2 only): no division ops
    c_tau = robust_c * tau
    scale = robust_penalty(log_ratio, robust_alpha, c_tau).mean()
    t_err_sq = (T_s[..., :3, 3] - T_t[..., :3, 3]).square().sum(-1)
    angle = geodesic_angle(T_s[..., :3, :3], T_t[..., :3, :3])
    if T_s.shape[1] > 0:
        trans = robust_penalty_sq(t_err_sq, robust_alpha, c_tau).mean()
        rot = robust_penalty(angle, robust_alpha, c_tau).mean()
        trans_m, rot_rad = t_err_sq.detach().sqrt().mean(), angle.detach().mean()
    else:
        trans = rot = trans_m = rot_rad = s_student.sum() * 0.0
    loss = scale_weight * scale + trans_weight * trans + rot_weight * rot
    details = {
        "distill/scale": scale.detach(),
        "distill/trans": trans.detach(),
        "distill/rot": rot.detach(),
        "distill/scale_abs_log": log_ratio.abs().mean().detach(),
        "distill/trans_m": trans_m.detach(),
        "distill/rot_rad": rot_rad.detach(),
        "distill/n_views": s_student.new_tensor(float(len(sel))),
    }
    return loss, details


class ScaleDistillLoss(nn.Module):
    """Module form of :func:`scale_distill_loss`; holds only its :class:`DistillConfig`."""

    def __init__(self, cfg: DistillConfig):
        super().__init__()
        self.cfg = cfg

    def forward(self, views: Views, preds: Views, batch: LossBatch | None = None):
        c = self.cfg
        return scale_distill_loss(views, preds, scale_weight=c.scale_weight, trans_weight=c.trans_weight,
                                  rot_weight=c.rot_weight, tau=c.tau, robust_alpha=c.robust_alpha,
                                  robust_c=c.robust_c, which_views=c.views, batch=batch)
