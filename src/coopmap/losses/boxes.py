"""Box consistency: pixels whose GT LiDAR return lies inside a GT vehicle box must be predicted inside that box.

A labelled pixel (``depthmap > 0`` and ``valid_mask``) whose GT point ``pts3d`` (world = GT view 0) lies in box k
(``|T_box_from_world p| <= e_k`` component-wise; the first such box) is a box pixel. The dataset precomputes this
membership per view (``box_index``, docs/views.md); views without that key get it computed here. Its predicted point, mapped
into the GT world through the view-0 alignment ``T_gt_view0 inv(T^_view0)``, pays its distance outside box k:

    d = | relu(|p^_box| - e_k) |_2        (metres, 0 inside, linear outside)

``coop/box`` is the mean over box pixels (0 when there are none; ``coop/box_pixels`` counts them).
"""

from __future__ import annotations

import torch

from coopmap.geometry import first_box_containing, invert_pose
from coopmap.losses.batch import LossBatch
from coopmap.losses.views import Views, transform_rows

BOX_VIEW_KEYS = {
    "pts3d": ("B", "H", "W", 3),
    "depthmap": ("B", "H", "W", 1),
    "valid_mask": ("B", "H", "W"),
    "camera_pose": ("B", 4, 4),
    "boxes_pose": ("B", "N", 4, 4),
    "boxes_half_extent": ("B", "N", 3),
    "boxes_count": ("B",),
}
#: optional view key: (B, H, W) int32, the first box containing each labelled pixel's GT point, -1 if none
#: (written by the dataset, see docs/views.md; computed here when absent).
BOX_INDEX_KEY = "box_index"
BOX_PRED_KEYS = {"pts3d": ("B", "H", "W", 3), "cam_quats": ("B", 4), "cam_trans": ("B", 3)}

def _membership(batch: LossBatch, boxes_T: torch.Tensor, half: torch.Tensor, counts: list[int], dtype):
    """(N,) first box containing each labelled pixel's GT point, -1 if none (when the views lack ``box_index``)."""
    pix = batch.labelled_pixels
    gt_pts = batch.labelled_rows("views", "pts3d").to(dtype)
    box = torch.full_like(pix.sample, -1)
    for b, n in enumerate(counts):
        rows = (pix.sample == b).nonzero()[:, 0]
        if n > 0 and rows.numel() > 0:
            box[rows] = first_box_containing(gt_pts[rows], boxes_T[b, :n], half[b, :n])
    return box


def distance_outside_box(p_box: torch.Tensor, half_extent: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of (*B, 3) box-frame points to boxes of (*B, 3) half extents; 0 inside. (*B,)."""
    return torch.linalg.vector_norm(torch.relu(p_box.abs() - half_extent), dim=-1)


def box_consistency_loss(
    views: Views, preds: Views, batch: LossBatch | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean distance outside their GT box of the predicted points of box pixels (see the module docstring).

    Returns:
        loss: 0-dim metres; details ``coop/box`` (= loss) and ``coop/box_pixels``.
    """
    batch = LossBatch.of(views, preds, batch)
    batch.check(BOX_VIEW_KEYS, BOX_PRED_KEYS)
    pix = batch.labelled_pixels
    pred_pts = batch.labelled_rows("preds", "pts3d")  # (N, 3) predicted world
    T0_inv = batch.pred_view0_inv
    T_world_from_pred = views[0]["camera_pose"].to(T0_inv.dtype) @ T0_inv  # (B, 4, 4) GT world <- predicted world
    boxes_T = invert_pose(views[0]["boxes_pose"].to(pred_pts.dtype))  # T_box_from_world, (B, N, 4, 4)
    half = views[0]["boxes_half_extent"].to(pred_pts.dtype)
    with torch.no_grad():
        if BOX_INDEX_KEY in views[0]:  # precomputed by the dataset
            batch.check({BOX_INDEX_KEY: ("B", "H", "W")}, {})
            box = batch.labelled_rows("views", BOX_INDEX_KEY)[:, 0].long()
        else:
            box = _membership(batch, boxes_T, half, views[0]["boxes_count"].tolist(), pred_pts.dtype)
        rows = (box >= 0).nonzero()[:, 0]
    b, k = pix.sample[rows], box[rows]
    p_world = transform_rows(T_world_from_pred, pred_pts[rows], b)
    p_box = transform_rows(boxes_T[b, k], p_world, torch.arange(rows.numel(), device=rows.device))
    dist = distance_outside_box(p_box, half[b, k])
    loss = dist.sum() / max(rows.numel(), 1)
    return loss, {"coop/box": loss.detach(), "coop/box_pixels": loss.new_tensor(float(rows.numel()))}
