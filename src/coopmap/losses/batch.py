"""One criterion call's views and predictions, with the derived tensors several losses share.

The base, depth, height, distillation and consistency losses all need some of: the labelled-pixel masks and their
gathered indices, the predicted camera poses (from quaternions) and their inverse at view 0, the agent layout.
:class:`LossBatch` computes each on first use and keeps it for the rest of the call only: the criterion makes one
per call and hands it to every section; a loss called alone makes its own. Nothing outlives the call.
"""

from __future__ import annotations

from functools import cached_property

import torch

from coopmap.geometry import invert_pose, pose_from_quat_trans
from coopmap.losses.views import (
    AgentLayout,
    PixelSet,
    Views,
    agent_layout,
    check_keys,
    check_same_views,
    labelled_masks,
    stack,
)


class LossBatch:
    """``views`` and ``preds`` (V dicts each, docs/views.md) plus lazily derived, shared tensors.

    The properties assume the keys they read were checked by the calling loss (``check_keys``).
    """

    def __init__(self, views: Views, preds: Views):
        check_same_views(views, preds)
        self.views = views
        self.preds = preds
        self._checked: set[tuple[str, str, tuple]] = set()
        self._rows: dict[tuple[str, str], torch.Tensor] = {}

    def check(self, view_spec: dict[str, tuple], pred_spec: dict[str, tuple]) -> None:
        """``check_keys`` on the views and predictions, skipping keys already checked in this call."""
        for which, dicts, spec in (("views", self.views, view_spec), ("preds", self.preds, pred_spec)):
            todo = {k: e for k, e in spec.items() if (which, k, e) not in self._checked}
            if todo:
                check_keys(dicts, which, todo)
                self._checked.update((which, k, e) for k, e in todo.items())

    def labelled_rows(self, which: str, key: str) -> torch.Tensor:
        """``views`` or ``preds`` ``key`` gathered at the labelled pixels, (N, C); gathered once per call, so the
        losses that share it also share its backward."""
        if (which, key) not in self._rows:
            self._rows[which, key] = self.labelled_pixels.gather(self.views if which == "views" else self.preds, key)
        return self._rows[which, key]

    @staticmethod
    def of(views: Views, preds: Views, batch: LossBatch | None = None) -> LossBatch:
        """``batch`` when the criterion passed one (for these same views), else a fresh one."""
        if batch is None:
            return LossBatch(views, preds)
        if batch.views is not views or batch.preds is not preds:
            raise ValueError("the LossBatch passed to a loss must wrap the same views and preds")
        return batch

    @cached_property
    def labelled(self) -> list[torch.Tensor]:
        """Per view, (B, H, W) bool: ``depthmap > 0`` and ``valid_mask``."""
        return labelled_masks(self.views)

    @cached_property
    def labelled_pixels(self) -> PixelSet:
        """The labelled pixels of every view, for gathering."""
        return PixelSet.from_masks(self.labelled)

    @cached_property
    def pred_poses(self) -> torch.Tensor:
        """(B, V, 4, 4) predicted T_predworld_from_cam (``cam_quats``, ``cam_trans``)."""
        return pose_from_quat_trans(stack(self.preds, "cam_quats"), stack(self.preds, "cam_trans"))

    @cached_property
    def pred_view0_inv(self) -> torch.Tensor:
        """(B, 4, 4) T_view0_from_predworld: re-expresses predictions relative to the predicted view 0."""
        return invert_pose(self.pred_poses[:, 0])

    @cached_property
    def pred_poses_rel0(self) -> torch.Tensor:
        """(B, V, 4, 4) predicted T_view0_from_cam, relative to the predicted view 0."""
        return self.pred_view0_inv[:, None] @ self.pred_poses

    @cached_property
    def gt_poses_rel0(self) -> torch.Tensor:
        """(B, V, 4, 4) GT T_view0_from_cam (relative to GT view 0, normally the identity already)."""
        T = stack(self.views, "camera_pose")
        return invert_pose(T[:, :1]) @ T

    @cached_property
    def layout(self) -> AgentLayout:
        """Agent and camera of every view slot (checked identical across the batch)."""
        return agent_layout(self.views)
