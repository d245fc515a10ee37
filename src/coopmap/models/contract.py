"""The model output contract: what every coopmap model returns (MapAnything's outputs, spec section 3).

A model takes a sample's list of V batch views (docs/views.md) and returns a list of V dicts, one per view, with
the keys of :data:`OUTPUT_KEYS`. With B the batch size and (H, W) the image size of the views:

- ``ray_directions`` (B,H,W,3): unit rays, OpenCV camera frame of the view.
- ``depth_along_ray`` (B,H,W,1): metres (already multiplied by the metric scale s).
- ``pts3d_cam`` (B,H,W,3): metres, camera frame; ``= depth_along_ray * ray_directions``.
- ``pts3d`` (B,H,W,3): metres, **predicted view-0 frame**; ``= R pts3d_cam + t`` with (R, t) the predicted pose.
- ``cam_trans`` (B,3): metres, cam2world translation in the predicted view-0 frame.
- ``cam_quats`` (B,4): **XYZW** unit quaternion of the cam2world rotation; sign not standardised.
- ``metric_scaling_factor`` (B,1): s > 0, one per sample (the same in every view); every metric quantity above is
  already multiplied by it, so ``pts3d / s`` is the model's up-to-scale reconstruction.
- ``conf`` (B,H,W): confidence ``1 + exp(x) >= 1`` (1 = no confidence).
- ``non_ambiguous_mask`` (B,H,W) bool and ``non_ambiguous_mask_logits`` (B,H,W): mask = logits > 0.

View 0's predicted pose is not forced to the identity (MapAnything trains it toward it): consumers compare poses
after re-expressing predictions relative to the predicted view 0.

:func:`assemble_outputs` is the one place that derives ``pts3d_cam``/``pts3d`` and applies s, so every model built
with it is consistent by construction; :func:`check_outputs` validates any model's output (tests, start of training).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from coopmap.errors import CoopmapError, ShapeError
from coopmap.geometry import pose_from_quat_trans, quat_xyzw_to_rotmat


class ContractError(CoopmapError, ValueError):
    """A model's outputs break the output contract (missing key, wrong dtype, inconsistent geometry)."""


@dataclass(frozen=True)
class OutputKey:
    """One output key: its shape in symbols (B, H, W or ints), dtype kind ("float" | "bool"), frame and meaning."""

    shape: tuple[str | int, ...]
    dtype: str
    frame: str
    meaning: str


#: every key a model must return per view, in MapAnything's order of definition.
OUTPUT_KEYS: dict[str, OutputKey] = {
    "ray_directions": OutputKey(("B", "H", "W", 3), "float", "camera", "unit ray of each pixel"),
    "depth_along_ray": OutputKey(("B", "H", "W", 1), "float", "camera", "metres along the ray, times s"),
    "pts3d_cam": OutputKey(("B", "H", "W", 3), "float", "camera", "depth_along_ray * ray_directions"),
    "pts3d": OutputKey(("B", "H", "W", 3), "float", "predicted view 0", "R pts3d_cam + t"),
    "cam_trans": OutputKey(("B", 3), "float", "predicted view 0", "cam2world translation, metres, times s"),
    "cam_quats": OutputKey(("B", 4), "float", "predicted view 0", "cam2world rotation, XYZW unit quaternion"),
    "metric_scaling_factor": OutputKey(("B", 1), "float", "-", "s > 0, already applied to metric outputs"),
    "conf": OutputKey(("B", "H", "W"), "float", "-", "1 + exp(x) >= 1"),
    "non_ambiguous_mask": OutputKey(("B", "H", "W"), "bool", "-", "non_ambiguous_mask_logits > 0"),
    "non_ambiguous_mask_logits": OutputKey(("B", "H", "W"), "float", "-", "logits of the mask"),
}


def assemble_outputs(
    ray_directions: torch.Tensor,
    depth_along_ray: torch.Tensor,
    cam_quats: torch.Tensor,
    cam_trans: torch.Tensor,
    metric_scale: torch.Tensor,
    conf: torch.Tensor,
    mask_logits: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Build one view's output dict from the factored prediction, applying the metric scale s.

    Args:
        ray_directions: (B,H,W,3) rays, camera frame (normalised here).
        depth_along_ray: (B,H,W,1) depth along the ray **before** scaling (up-to-scale units).
        cam_quats: (B,4) XYZW cam2world rotation in the view-0 frame (normalised here).
        cam_trans: (B,3) cam2world translation **before** scaling.
        metric_scale: (B,1) s > 0.
        conf: (B,H,W) >= 1; mask_logits: (B,H,W).
    Returns:
        The view's dict with every key of :data:`OUTPUT_KEYS`; metric quantities are multiplied by s.
    """
    rays = ray_directions / ray_directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    quats = cam_quats / cam_quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    s = metric_scale
    depth = depth_along_ray * s[:, :, None, None]
    trans = cam_trans * s
    pts3d_cam = rays * depth
    R = quat_xyzw_to_rotmat(quats)
    pts3d = torch.einsum("bij,bhwj->bhwi", R, pts3d_cam) + trans[:, None, None, :]
    return {
        "ray_directions": rays,
        "depth_along_ray": depth,
        "pts3d_cam": pts3d_cam,
        "pts3d": pts3d,
        "cam_trans": trans,
        "cam_quats": quats,
        "metric_scaling_factor": s,
        "conf": conf,
        "non_ambiguous_mask": mask_logits > 0,
        "non_ambiguous_mask_logits": mask_logits,
    }


def pred_camera_pose(pred: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """A view's predicted T_view0_from_cam (B,4,4) from its ``cam_quats`` (XYZW) and ``cam_trans`` (metres)."""
    return pose_from_quat_trans(pred["cam_quats"], pred["cam_trans"])


def check_outputs(
    views: Sequence[Mapping],
    preds: Sequence[Mapping],
    *,
    rtol: float = 1e-3,
    atol: float = 1e-3,
    unit_tol: float = 1e-3,
) -> None:
    """Validate a model's outputs against the contract; raise naming the view index and the key.

    Checks, per view: every key of :data:`OUTPUT_KEYS` is a tensor of the right shape (B, H, W from the view's
    ``img``) and dtype, finite; unit rays and quaternions (|norm - 1| <= unit_tol); conf >= 1; s > 0 and the same
    in every view; ``pts3d_cam == depth_along_ray * ray_directions`` and ``pts3d == R pts3d_cam + t`` within
    ``atol + rtol |p|`` metres; mask == (logits > 0).

    Raises:
        ShapeError: a tensor of the wrong shape. ContractError: anything else.
    """
    if not isinstance(preds, (list, tuple)):
        raise ContractError(f"model outputs must be a list of per-view dicts, got {type(preds).__name__}")
    if len(preds) != len(views):
        raise ContractError(f"model returned {len(preds)} view dicts for {len(views)} input views")
    scale0 = None
    for i, (view, pred) in enumerate(zip(views, preds)):
        _check_keys(i, view, pred)
        p = {k: pred[k].detach().to(torch.float64) for k in OUTPUT_KEYS if k != "non_ambiguous_mask"}
        _check_values(i, p, unit_tol)
        _check_geometry(i, p, rtol, atol)
        logits, mask = p["non_ambiguous_mask_logits"], pred["non_ambiguous_mask"].detach()
        bad = (mask != (logits > 0)) & (logits.abs() > 1e-3)
        if bad.any():
            raise ContractError(f"view {i}, 'non_ambiguous_mask': differs from logits > 0 at {int(bad.sum())} pixels")
        s = p["metric_scaling_factor"]
        if scale0 is None:
            scale0 = s
        elif not torch.allclose(s, scale0, rtol=1e-5, atol=0):
            raise ContractError(
                f"view {i}, 'metric_scaling_factor': {s.flatten().tolist()} differs from view 0's "
                f"{scale0.flatten().tolist()} (one scale per sample)"
            )


def _check_keys(i: int, view: Mapping, pred: Mapping) -> None:
    if not isinstance(pred, Mapping):
        raise ContractError(f"view {i}: model output must be a dict, got {type(pred).__name__}")
    B, _, H, W = view["img"].shape
    dims = {"B": B, "H": H, "W": W}
    for key, spec in OUTPUT_KEYS.items():
        if key not in pred:
            raise ContractError(f"view {i}: missing output key '{key}' ({spec.meaning})")
        x = pred[key]
        if not isinstance(x, torch.Tensor):
            raise ContractError(f"view {i}, '{key}': expected a tensor, got {type(x).__name__}")
        expected = tuple(dims.get(d, d) if isinstance(d, str) else d for d in spec.shape)
        if tuple(x.shape) != expected:
            sym = ",".join(str(d) for d in spec.shape)
            raise ShapeError(f"view {i}, '{key}': expected shape ({sym}) = {expected}, got {tuple(x.shape)}")
        if spec.dtype == "bool" and x.dtype != torch.bool:
            raise ContractError(f"view {i}, '{key}': expected dtype bool, got {x.dtype}")
        if spec.dtype == "float":
            if not x.is_floating_point():
                raise ContractError(f"view {i}, '{key}': expected a floating dtype, got {x.dtype}")
            if not torch.isfinite(x).all():
                raise ContractError(f"view {i}, '{key}': {int((~torch.isfinite(x)).sum())} non-finite values")


def _check_values(i: int, p: Mapping[str, torch.Tensor], unit_tol: float) -> None:
    for key in ("ray_directions", "cam_quats"):
        err = (p[key].norm(dim=-1) - 1).abs().max().item()
        if err > unit_tol:
            raise ContractError(f"view {i}, '{key}': not unit vectors (max |norm - 1| = {err:.3g})")
    if p["conf"].min().item() < 1 - 1e-6:
        raise ContractError(f"view {i}, 'conf': must be >= 1 (1 + exp(x)), min is {p['conf'].min().item():.6g}")
    if p["metric_scaling_factor"].min().item() <= 0:
        raise ContractError(f"view {i}, 'metric_scaling_factor': must be > 0, got {p['metric_scaling_factor'].flatten().tolist()}")
    if p["depth_along_ray"].min().item() < 0:
        raise ContractError(f"view {i}, 'depth_along_ray': negative values (min {p['depth_along_ray'].min().item():.6g})")


def _check_geometry(i: int, p: Mapping[str, torch.Tensor], rtol: float, atol: float) -> None:
    cam = p["pts3d_cam"]
    _close(i, "pts3d_cam", cam, p["depth_along_ray"] * p["ray_directions"], rtol, atol, "depth_along_ray * ray_directions")
    R = quat_xyzw_to_rotmat(p["cam_quats"])
    world = torch.einsum("bij,bhwj->bhwi", R, cam) + p["cam_trans"][:, None, None, :]
    _close(i, "pts3d", p["pts3d"], world, rtol, atol, "R(cam_quats) pts3d_cam + cam_trans")


def _close(i: int, key: str, x: torch.Tensor, ref: torch.Tensor, rtol: float, atol: float, what: str) -> None:
    err = (x - ref).norm(dim=-1)
    tol = atol + rtol * ref.norm(dim=-1)
    if (err > tol).any():
        worst = (err - tol).argmax()
        raise ContractError(
            f"view {i}, '{key}': inconsistent with {what} at {int((err > tol).sum())} pixels "
            f"(worst error {err.flatten()[worst].item():.4g} m, tolerance {tol.flatten()[worst].item():.4g} m)"
        )
