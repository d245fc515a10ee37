"""``oracle``: returns the sample's ground truth in the output contract, with exactly known injected errors.

It exists so that every metric can be checked to report exactly the error that was injected.

Per view, with z the GT z-depth chosen per pixel as
  1. the sparse GT ``depthmap`` where ``valid_mask`` (exactly the GT depth),
  2. else the synthetic scene's ``dense_depthmap`` where ``has_dense_depth`` and it is > 0,
  3. else 0: the pixel is masked out (``non_ambiguous_mask`` False, logits -10) with ``conf = 1``, which is "zero
     confidence" in MapAnything's ``conf = 1 + exp(x) >= 1`` parametrisation;
pixels with depth get ``conf = ORACLE_CONF`` and mask logits +10. Rays come from ``camera_intrinsics`` (they equal
the views' ``ray_directions_cam``) and the pose is the GT ``camera_pose``. Computed in float64, returned in the
dtype of the views' ``img``.

Injected errors (:class:`~coopmap.models.config.ModelConfig` knobs):
- ``depth_noise_m`` = sigma: z += N(0, sigma^2) on pixels with depth (clamped to >= 1 mm), from a generator
  seeded by (``seed``, the sample's ``idx``, the view index): the same sample always gets the same noise.
- ``agent_rot_deg`` = theta and ``agent_offset_m`` = d, on views of non-ego agents (``agent_index > 0``): with
  A = the GT ``agent_pose`` (T_world_from_agent), the predicted agent pose is ``A' = A Tx(d) Rz(theta)`` (moved d
  metres along its own forward axis, then yawed by theta about its own up axis), so each of its cameras becomes
  ``T' = A' inv(A) T`` and its points move rigidly with it (``pts3d_cam`` unchanged).
- ``scale`` = s: every metric output (depth, ``pts3d_cam``, ``pts3d``, ``cam_trans``) is multiplied by s and
  ``metric_scaling_factor = s``: ``pts3d = s * (unscaled prediction)``, so up-to-scale metrics see no error and
  metric ones see exactly s.

The oracle has no trainable weights; it holds one zero-valued parameter (``anchor``) added to its float outputs so
that a training loop can call ``backward`` and step an optimizer on it (the values are unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from coopmap.errors import ConfigError, ShapeError
from coopmap.geometry import depthmap_to_pts_cam, ray_directions, rotmat_to_quat_xyzw
from coopmap.models.config import ModelConfig
from coopmap.models.contract import assemble_outputs

#: confidence of pixels with known depth (conf >= 1; 1 = none).
ORACLE_CONF = 100.0
#: |logit| of the non-ambiguous mask.
MASK_LOGIT = 10.0

_REQUIRED = ("img", "depthmap", "valid_mask", "camera_intrinsics", "camera_pose")


def oracle_predictions(
    views: Sequence[Mapping],
    *,
    scale: float = 1.0,
    agent_offset_m: float = 0.0,
    agent_rot_deg: float = 0.0,
    depth_noise_m: float = 0.0,
    seed: int = 0,
) -> list[dict[str, torch.Tensor]]:
    """The ground truth of a batch of views as model outputs, with the injected errors of the module docstring."""
    if scale <= 0 or depth_noise_m < 0:
        raise ValueError(f"oracle: scale must be > 0 and depth_noise_m >= 0, got {scale}, {depth_noise_m}")
    outputs = []
    for i, view in enumerate(views):
        _check_view(i, view)
        z = oracle_depth(view)
        if depth_noise_m > 0:
            z = _add_depth_noise(z, view, i, depth_noise_m, seed)
        K = view["camera_intrinsics"].to(torch.float64)
        H, W = z.shape[-2:]
        rays = ray_directions(K, H, W)
        depth_along_ray = depthmap_to_pts_cam(z, K).norm(dim=-1, keepdim=True)
        T = view["camera_pose"].to(torch.float64)
        if agent_offset_m != 0.0 or agent_rot_deg != 0.0:
            T = perturb_agent_cameras(T, view, agent_offset_m, agent_rot_deg)
        known = z > 0
        s = torch.full((z.shape[0], 1), float(scale), dtype=torch.float64, device=z.device)
        conf = torch.where(known, ORACLE_CONF, 1.0).to(torch.float64)
        logits = torch.where(known, MASK_LOGIT, -MASK_LOGIT).to(torch.float64)
        out = assemble_outputs(rays, depth_along_ray, rotmat_to_quat_xyzw(T[:, :3, :3]), T[:, :3, 3], s, conf, logits)
        dtype = view["img"].dtype
        outputs.append({k: v.to(dtype) if v.is_floating_point() else v for k, v in out.items()})
    return outputs


def oracle_depth(view: Mapping) -> torch.Tensor:
    """(B,H,W) float64 z-depth: sparse GT where valid, else dense GT where available and > 0, else 0."""
    sparse = view["depthmap"][..., 0].to(torch.float64)
    z = torch.where(view["valid_mask"], sparse, torch.zeros_like(sparse))
    if "dense_depthmap" in view and "has_dense_depth" in view:
        dense = view["dense_depthmap"][..., 0].to(torch.float64)
        use_dense = (~view["valid_mask"]) & view["has_dense_depth"][:, None, None] & (dense > 0)
        z = torch.where(use_dense, dense, z)
    return z


def perturb_agent_cameras(T: torch.Tensor, view: Mapping, offset_m: float, rot_deg: float) -> torch.Tensor:
    """Move the cameras of non-ego agents: ``T' = A Tx(offset) Rz(rot) inv(A) T`` where ``agent_index > 0``.

    Args:
        T: (B,4,4) T_world_from_cam; view: needs ``agent_pose`` (B,4,4) and ``agent_index`` (B,).
    Returns:
        (B,4,4) float64; ego views (agent_index 0) unchanged.
    """
    for key in ("agent_pose", "agent_index"):
        if key not in view:
            raise ShapeError(f"oracle: agent_offset_m / agent_rot_deg need the view key '{key}' (docs/views.md)")
    A = view["agent_pose"].to(torch.float64)
    theta = math.radians(rot_deg)
    M = torch.eye(4, dtype=torch.float64, device=T.device)
    M[0, 0], M[0, 1], M[1, 0], M[1, 1] = math.cos(theta), -math.sin(theta), math.sin(theta), math.cos(theta)
    M[0, 3] = offset_m  # Tx(d) Rz(theta): translation along x, then the yaw
    moved = A @ M @ torch.linalg.inv(A) @ T
    is_cav = (view["agent_index"] > 0).to(T.device)[:, None, None]
    return torch.where(is_cav, moved, T)


def _add_depth_noise(z: torch.Tensor, view: Mapping, view_index: int, sigma: float, seed: int) -> torch.Tensor:
    idx = view.get("idx")
    noise = torch.empty_like(z)
    for b in range(z.shape[0]):
        sample = int(idx[b]) if idx is not None else b
        gen = torch.Generator().manual_seed(((seed * 1_000_003 + sample) * 1_009 + view_index) % (2**63))
        noise[b] = torch.randn(z.shape[1:], generator=gen, dtype=torch.float64).to(z.device)
    return torch.where(z > 0, (z + sigma * noise).clamp_min(1e-3), z)


def _check_view(i: int, view: Mapping) -> None:
    for key in _REQUIRED:
        if key not in view:
            raise ShapeError(f"oracle: view {i} lacks the key '{key}' (docs/views.md)")


class Oracle(nn.Module):
    """``forward(views)`` = :func:`oracle_predictions` with the config's knobs (plus the zero ``anchor``)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.scale, self.depth_noise_m = float(cfg.scale), float(cfg.depth_noise_m)
        self.agent_offset_m, self.agent_rot_deg = float(cfg.agent_offset_m), float(cfg.agent_rot_deg)
        self.seed = int(cfg.seed)
        if self.scale <= 0 or self.depth_noise_m < 0:
            raise ConfigError(f"model.scale must be > 0 and model.depth_noise_m >= 0, got {cfg.scale}, {cfg.depth_noise_m}")
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, views: Sequence[Mapping]) -> list[dict[str, torch.Tensor]]:
        preds = oracle_predictions(
            views, scale=self.scale, agent_offset_m=self.agent_offset_m, agent_rot_deg=self.agent_rot_deg,
            depth_noise_m=self.depth_noise_m, seed=self.seed,
        )
        zero = self.anchor * 0.0
        return [{k: v + zero.to(v.dtype) if v.is_floating_point() else v for k, v in p.items()} for p in preds]
