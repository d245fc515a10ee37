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

Trivial references (what a model must beat):
- ``pose_reference``: ``gt`` (the GT ``camera_pose``), ``identity`` (every camera pose = I, so ``pts3d =
  pts3d_cam``) or ``rig_at_ego`` (every agent at the ego's origin: camera pose = ``agent_pose`` of view 0 (the
  ego's camera0) ``@ T_agent_from_cam`` of the view; exactly GT for the ego's own cameras) or ``shared`` (the
  shared poses the models get as pose inputs, ``shared_camera_pose``: a model that passes its inputs through,
  refinement 0). ``agent_offset_m`` / ``agent_rot_deg`` apply to ``gt`` only.
- ``constant_depth_m`` = c: every pixel's z-depth is c (every pixel known: conf ``ORACLE_CONF``, mask True).

Planted floaters (known failures, for validating the floating metrics):
- ``sky_float_frac`` = f_s, ``unlabelled_float_frac`` = f_u, ``float_height_m`` = h: in each view, of the sky
  pixels (``has_dense_depth``, dense GT 0, not ``valid_mask``) resp. the unlabelled non-sky pixels (not
  ``valid_mask`` and dense GT > 0; on views without dense GT every unlabelled pixel) whose ray reaches the
  ego-frame height h in front of the camera (through the GT ``T_ego_from_cam``), exactly ``floor(f n)`` of those n
  are chosen (seeded like the depth noise) and given the z-depth at which their ray is at height h; they are
  known pixels (conf ``ORACLE_CONF``, mask True).

Order: GT depth (or ``constant_depth_m``), then ``depth_noise_m``, then the floaters (at exactly h), then
``scale``; poses per ``pose_reference``, then the agent perturbation.

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


POSE_REFERENCES = ("gt", "identity", "rig_at_ego", "shared")


def knob_errors(
    *, scale: float = 1.0, agent_offset_m: float = 0.0, agent_rot_deg: float = 0.0, depth_noise_m: float = 0.0,
    pose_reference: str = "gt", constant_depth_m: float | None = None, sky_float_frac: float = 0.0,
    unlabelled_float_frac: float = 0.0, float_height_m: float = 10.0, **_: object,
) -> list[str]:
    """What is wrong with a set of oracle knobs, one message per knob (empty when they are fine)."""
    errors = []
    if not scale > 0:
        errors.append(f"scale must be > 0, got {scale}")
    if not depth_noise_m >= 0:
        errors.append(f"depth_noise_m must be >= 0, got {depth_noise_m}")
    if pose_reference not in POSE_REFERENCES:
        errors.append(f"pose_reference must be one of {'|'.join(POSE_REFERENCES)}, got {pose_reference!r}")
    elif pose_reference != "gt" and (agent_offset_m != 0 or agent_rot_deg != 0):
        errors.append(f"agent_offset_m / agent_rot_deg apply to pose_reference=gt only, got {pose_reference!r}")
    if constant_depth_m is not None and not (math.isfinite(constant_depth_m) and constant_depth_m > 0):
        errors.append(f"constant_depth_m must be > 0 (or null), got {constant_depth_m}")
    for name, frac in (("sky_float_frac", sky_float_frac), ("unlabelled_float_frac", unlabelled_float_frac)):
        if not 0 <= frac <= 1:
            errors.append(f"{name} must be in [0, 1], got {frac}")
    if not math.isfinite(float_height_m):
        errors.append(f"float_height_m must be finite, got {float_height_m}")
    return errors


def oracle_predictions(
    views: Sequence[Mapping],
    *,
    scale: float = 1.0,
    agent_offset_m: float = 0.0,
    agent_rot_deg: float = 0.0,
    depth_noise_m: float = 0.0,
    seed: int = 0,
    pose_reference: str = "gt",
    constant_depth_m: float | None = None,
    sky_float_frac: float = 0.0,
    unlabelled_float_frac: float = 0.0,
    float_height_m: float = 10.0,
) -> list[dict[str, torch.Tensor]]:
    """The ground truth of a batch of views as model outputs, with the injected errors of the module docstring."""
    errors = knob_errors(scale=scale, agent_offset_m=agent_offset_m, agent_rot_deg=agent_rot_deg,
                         depth_noise_m=depth_noise_m, pose_reference=pose_reference,
                         constant_depth_m=constant_depth_m, sky_float_frac=sky_float_frac,
                         unlabelled_float_frac=unlabelled_float_frac, float_height_m=float_height_m)
    if errors:
        raise ValueError(f"oracle: {'; '.join(errors)}")
    outputs = []
    for i, view in enumerate(views):
        _check_view(i, view)
        z = oracle_depth(view)
        if constant_depth_m is not None:
            z = torch.full_like(z, float(constant_depth_m))
        if depth_noise_m > 0:
            z = _add_depth_noise(z, view, i, depth_noise_m, seed)
        if sky_float_frac > 0 or unlabelled_float_frac > 0:
            z = plant_floaters(z, view, i, sky_frac=sky_float_frac, unlabelled_frac=unlabelled_float_frac,
                               height_m=float_height_m, seed=seed)
        K = view["camera_intrinsics"].to(torch.float64)
        H, W = z.shape[-2:]
        rays = ray_directions(K, H, W)
        depth_along_ray = depthmap_to_pts_cam(z, K).norm(dim=-1, keepdim=True)
        T = reference_poses(view, views[0], pose_reference)
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


def reference_poses(view: Mapping, ego_view: Mapping, reference: str) -> torch.Tensor:
    """(B,4,4) float64 T_world_from_cam of ``view`` per ``pose_reference`` (``ego_view`` = view 0, the ego's
    camera0): ``gt`` = ``camera_pose``; ``identity`` = I; ``rig_at_ego`` = ``ego_view['agent_pose'] @
    view['T_agent_from_cam']`` (the view's camera on the rig of a vehicle standing at the ego's origin); ``shared`` =
    ``shared_camera_pose`` (the shared agent pose x the known rig, docs/data.md)."""
    T = view["camera_pose"].to(torch.float64)
    if reference == "gt":
        return T
    if reference == "identity":
        return torch.eye(4, dtype=torch.float64, device=T.device).expand(T.shape[0], 4, 4).clone()
    if reference == "rig_at_ego":
        for key, v in (("agent_pose", ego_view), ("T_agent_from_cam", view)):
            if key not in v:
                raise ShapeError(f"oracle: pose_reference=rig_at_ego needs the view key '{key}' (docs/views.md)")
        return ego_view["agent_pose"].to(torch.float64) @ view["T_agent_from_cam"].to(torch.float64)
    if reference == "shared":
        if "shared_camera_pose" not in view:
            raise ShapeError("oracle: pose_reference=shared needs the view key 'shared_camera_pose' (docs/views.md)")
        return view["shared_camera_pose"].to(torch.float64)
    raise ValueError(f"oracle: pose_reference must be one of {'|'.join(POSE_REFERENCES)}, got {reference!r}")


def floater_depth(view: Mapping, height_m: float) -> torch.Tensor:
    """(B,H,W) float64: the z-depth at which each pixel's ray is at ego-frame height ``height_m`` (through the GT
    ``T_ego_from_cam``); NaN where the ray never reaches it in front of the camera."""
    if "T_ego_from_cam" not in view:
        raise ShapeError("oracle: planted floaters need the view key 'T_ego_from_cam' (docs/views.md)")
    K = view["camera_intrinsics"].to(torch.float64)
    ones = torch.ones(view["valid_mask"].shape, dtype=torch.float64, device=K.device)
    ray_z1 = depthmap_to_pts_cam(ones, K)  # (B,H,W,3): the pixel's point at z-depth 1
    row = view["T_ego_from_cam"].to(torch.float64)[:, 2]  # ego z of a camera point: row[:3] . p + row[3]
    dz = torch.einsum("bk,bhwk->bhw", row[:, :3], ray_z1)
    depth = (height_m - row[:, 3, None, None]) / dz
    return torch.where(torch.isfinite(depth) & (depth > 0), depth, torch.nan)


def floater_candidates(view: Mapping) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,H,W) bool x 2: the sky pixels (``has_dense_depth``, dense GT 0, not ``valid_mask``) and the unlabelled
    non-sky pixels (not ``valid_mask``, dense GT > 0 on views with dense GT, any unlabelled pixel elsewhere)."""
    valid = view["valid_mask"].bool()
    sky = torch.zeros_like(valid)
    if "dense_depthmap" in view and "has_dense_depth" in view:
        sky = view["has_dense_depth"].bool()[:, None, None] & (view["dense_depthmap"][..., 0] == 0) & ~valid
    return sky, ~valid & ~sky


def plant_floaters(z: torch.Tensor, view: Mapping, view_index: int, *, sky_frac: float, unlabelled_frac: float,
                   height_m: float, seed: int) -> torch.Tensor:
    """(B,H,W) z-depth with ``floor(f n)`` of the n reachable sky (resp. unlabelled non-sky) pixels of each view
    moved to ego-frame height ``height_m`` along their ray; the choice is seeded by (seed, sample idx, view)."""
    target = floater_depth(view, height_m)
    reachable = ~torch.isnan(target)
    out = z.clone()
    idx = view.get("idx")
    for mask, frac, stream in zip(floater_candidates(view), (sky_frac, unlabelled_frac), (1, 2)):
        if frac <= 0:
            continue
        for b in range(z.shape[0]):
            sample = int(idx[b]) if idx is not None else b
            cand = (mask[b] & reachable[b]).flatten().nonzero()[:, 0]
            n = math.floor(frac * len(cand))
            gen = torch.Generator().manual_seed(_stream_seed(seed, sample, view_index, stream))
            pick = cand[torch.randperm(len(cand), generator=gen)[:n].to(cand.device)]
            out[b].view(-1)[pick] = target[b].reshape(-1)[pick]
    return out


def _stream_seed(seed: int, sample: int, view_index: int, stream: int = 0) -> int:
    """The generator seed of one (oracle seed, sample, view) and random stream (0 = depth noise, 1, 2 = floaters)."""
    base = (seed * 1_000_003 + sample) * 1_009 + view_index
    return (base if stream == 0 else base * 31 + stream) % (2**63)


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
        gen = torch.Generator().manual_seed(_stream_seed(seed, sample, view_index))
        noise[b] = torch.randn(z.shape[1:], generator=gen, dtype=torch.float64).to(z.device)
    return torch.where(z > 0, (z + sigma * noise).clamp_min(1e-3), z)


def _check_view(i: int, view: Mapping) -> None:
    for key in _REQUIRED:
        if key not in view:
            raise ShapeError(f"oracle: view {i} lacks the key '{key}' (docs/views.md)")


#: the ``model`` fields the oracle reads (its knobs).
KNOBS = ("scale", "agent_offset_m", "agent_rot_deg", "depth_noise_m", "seed", "pose_reference", "constant_depth_m",
         "sky_float_frac", "unlabelled_float_frac", "float_height_m")


class Oracle(nn.Module):
    """``forward(views)`` = :func:`oracle_predictions` with the config's knobs (plus the zero ``anchor``)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.knobs = {k: getattr(cfg, k) for k in KNOBS}
        errors = knob_errors(**self.knobs)
        if errors:
            raise ConfigError("; ".join(f"model.{e}" for e in errors))
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, views: Sequence[Mapping]) -> list[dict[str, torch.Tensor]]:
        preds = oracle_predictions(views, **self.knobs)
        zero = self.anchor * 0.0
        return [{k: v + zero.to(v.dtype) if v.is_floating_point() else v for k, v in p.items()} for p in preds]
