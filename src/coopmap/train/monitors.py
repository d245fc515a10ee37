"""Per-batch numbers the seed plan's validation watches, logged with every training step.

``scale_err`` and ``pose_abs_t`` / ``pose_abs_r`` (definitions in docs/metrics.md), computed on the batch's
first sample from the predictions already at hand (no extra forward pass).
"""

from __future__ import annotations

import torch

from coopmap.geometry import pose_from_quat_trans
from coopmap.metrics import pose_abs, scale_err


@torch.no_grad()
def batch_monitors(views: list[dict], preds: list[dict]) -> dict[str, float]:
    pred_z = torch.stack([p["pts3d_cam"][0, ..., 2] for p in preds]).float().cpu().numpy()
    gt_z = torch.stack([v["depthmap"][0, ..., 0] for v in views]).float().cpu().numpy()
    valid = torch.stack([v["valid_mask"][0] for v in views]).cpu().numpy()
    pred_pose = torch.stack(
        [pose_from_quat_trans(p["cam_quats"][0].double(), p["cam_trans"][0].double()) for p in preds]
    )
    gt_pose = torch.stack([v["camera_pose"][0].double() for v in views])
    t_err, r_err = pose_abs(pred_pose.cpu().numpy(), gt_pose.cpu().numpy())
    return {"scale_err": scale_err(pred_z, gt_z, valid), "pose_abs_t": t_err, "pose_abs_r": r_err}
