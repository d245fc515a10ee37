"""Camera pose inputs of the models, MapAnything's way, read from the views' **shared** poses (never the GT).

MapAnything (facebookresearch/map-anything, commit f7ebafb, ``mapanything/models/mapanything/model.py``) reads per
view ``camera_pose_quats`` (B, 4) XYZW and ``camera_pose_trans`` (B, 3): cam2world, OpenCV axes, any common world
(``forward`` docstring, l. 1544-1545). It re-expresses every view relative to view 0 itself
(``_compute_pose_quats_and_trans_for_across_views_in_ref_view``, l. 680-784, through
``utils/geometry.transform_pose_using_quats_and_trans_2_to_1``: ``q = q0^-1 q_i``, ``t = R0^T (t_i - t0)``),
divides the translations by their mean non-zero norm per sample (``normalize_pose_translations``), encodes the
quaternion, the normalised translation and, for metric samples (``is_metric_scale``), the log of that norm with
three small MLPs (``cam_rot_encoder``, ``cam_trans_encoder``, ``cam_trans_scale_encoder``), adds their sum to every
patch token of the view and applies a LayerNorm (``fusion_norm_layer``) (``_encode_and_fuse_cam_quats_and_trans``,
l. 1045-1164). Whether the inputs are used is drawn per sample from ``geometric_input_config`` (``cam_prob`` ...);
``infer()`` sets those probabilities to 1 / 0 from the inputs given (``_configure_geometric_input_config``,
l. 1964-2007), as :func:`deterministic_geometric_config` does for our adapter.

Our batch views keep MapAnything's GT keys (``camera_pose_quats`` / ``_trans``: the loss targets); the model inputs
come from ``shared_camera_pose_quats`` / ``_trans`` (docs/data.md "Shared poses"), which equal the GT keys only
with perfect sharing. The views' world is view 0, so the inputs of view 0 are (about) the identity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import roma
import torch

from coopmap.errors import ConfigError, ShapeError
from coopmap.geometry import quat_xyzw_to_rotmat

#: MapAnything's pose input keys.
POSE_INPUT_KEYS = ("camera_pose_quats", "camera_pose_trans")
#: the view key each pose input is read from.
SHARED_SOURCE = {"camera_pose_quats": "shared_camera_pose_quats", "camera_pose_trans": "shared_camera_pose_trans"}


def wants_pose_inputs(geometric_inputs: Sequence[str]) -> bool:
    """True when ``model.geometric_inputs`` asks for the camera poses (both keys, or neither: ConfigError)."""
    asked = [k for k in POSE_INPUT_KEYS if k in geometric_inputs]
    if len(asked) == 1:
        raise ConfigError(f"model.geometric_inputs has {asked[0]} without its pair: pose inputs need both "
                          f"{list(POSE_INPUT_KEYS)}")
    return len(asked) == 2


def shared_pose_input(view: Mapping, key: str, index: int):
    """The value a model receives as MapAnything's pose input ``key`` of view ``index``: the shared pose."""
    source = SHARED_SOURCE[key]
    if source not in view:
        raise ConfigError(f"model.geometric_inputs asks for '{key}' but view {index} has no '{source}' (the shared "
                          "pose the views carry, docs/views.md); pose inputs are never taken from the GT")
    return view[source]


def stacked_pose_inputs(views: Sequence[Mapping]) -> tuple[torch.Tensor, torch.Tensor]:
    """The shared pose inputs of every view: quats (V, B, 4) XYZW and trans (V, B, 3) metres (views' world)."""
    q = torch.stack([shared_pose_input(v, "camera_pose_quats", i) for i, v in enumerate(views)])
    t = torch.stack([shared_pose_input(v, "camera_pose_trans", i) for i, v in enumerate(views)])
    if q.dim() != 3 or q.shape[-1] != 4 or t.shape != q.shape[:-1] + (3,):
        raise ShapeError(f"pose inputs: expected (B, 4) quats and (B, 3) translations per view, got "
                         f"{tuple(q.shape[1:])} and {tuple(t.shape[1:])}")
    return q, t


def relative_to_view0(quats: torch.Tensor, trans: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Poses (V, B, 4) XYZW, (V, B, 3) re-expressed in view 0's frame: ``q0^-1 q_i``, ``R0^T (t_i - t0)``."""
    q0 = roma.quat_normalize(quats[:1])
    q = roma.quat_product(roma.quat_conjugation(q0).expand_as(quats), roma.quat_normalize(quats))
    R0 = quat_xyzw_to_rotmat(q0)  # (1, B, 3, 3)
    t = ((trans - trans[:1])[..., None, :] @ R0)[..., 0, :]  # row vector times R0 = (R0^T v)^T
    return q, t


def normalize_translations(trans: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """(V, B, 3) translations divided by their per-sample mean non-zero norm f; returns them and f (B,)."""
    norm = torch.linalg.vector_norm(trans, dim=-1)  # (V, B)
    f = (norm.sum(0) / ((norm > 0).sum(0) + eps)).clamp_min(eps)
    return trans / f[None, :, None], f


def deterministic_geometric_config(geometric_inputs: Sequence[str]) -> dict[str, float]:
    """MapAnything ``geometric_input_config`` probabilities that use exactly the asked inputs, every sample (what
    their ``infer()`` sets); metric scale inputs are used when ``is_metric_scale`` is asked."""
    metric = "is_metric_scale" in geometric_inputs
    return {
        "overall_prob": 1.0, "dropout_prob": 0.0,
        "ray_dirs_prob": 1.0 if "ray_directions_cam" in geometric_inputs else 0.0,
        "depth_prob": 1.0 if "depth_along_ray" in geometric_inputs else 0.0,
        "cam_prob": 1.0 if wants_pose_inputs(geometric_inputs) else 0.0,
        "sparse_depth_prob": 0.0,
        "depth_scale_norm_all_prob": 0.0 if metric else 1.0,
        "pose_scale_norm_all_prob": 0.0 if metric else 1.0,
    }
