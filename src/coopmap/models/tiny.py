"""``tiny``: a small multi-view network of our own with MapAnything's output contract.

Architecture (sizes from :class:`~coopmap.models.config.ModelConfig`; D = embed_dim, p = patch_size):

1. **Patch embedding**: a p x p stride-p convolution turns each view's image (B,3,H,W) into (H/p)(W/p) tokens of
   width D, plus fixed 2-D sine-cosine position codes (so any resolution works) and, on view 0 only, a learned
   reference-view embedding (view 0 defines the output frame).
2. **Alternating attention**: ``depth`` pre-norm transformer blocks; even-indexed blocks attend within each view,
   odd-indexed blocks attend across all tokens of all views of a sample plus one learned **scale token**.
3. **Dense head** (this and the next heads run in float32, outside autocast): a linear map per token to p*p*16 features, pixel-shuffled to (16,H,W), GELU, 3x3 convolution to
   6 channels: ray offset (3) added to a pinhole prior ray (``ray_prior_fov_deg``), log-depth (1), confidence
   logit (1), non-ambiguous mask logit (1).
4. **Pose head**: mean-pooled tokens of each view -> MLP -> translation (3) and XYZW quaternion (4), initialised
   at the identity rotation.
5. **Scale head**: the scale token -> linear -> s = exp(x) (initialised at ``init_scale_m``), applied to depth and
   translation by :func:`~coopmap.models.contract.assemble_outputs`.
6. **Pose inputs** (only when ``model.geometric_inputs`` holds ``camera_pose_quats`` and ``camera_pose_trans``;
   read from the views' shared poses, :mod:`coopmap.models.pose_inputs`), MapAnything's way: each view's input
   pose relative to view 0, its quaternion, its translation divided by the sample's mean translation norm f and
   (with ``is_metric_scale`` asked and true) log f go through three small MLPs whose sum is added to every patch
   token of the view, then a LayerNorm. The pose head then predicts a correction in the camera's own frame:
   ``T_out = T_in [R(q), t]`` (metres), initialised at exactly the identity (zero weights), so the poses pass through
   at the start and with noisy inputs the network can learn to refine them. Without pose inputs none of these modules exist
   (the default model and its checkpoints are unchanged).

All views of a sample must share B, H, W; H and W must be multiples of p.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import roma
import torch
import torch.nn.functional as F
from torch import nn

from coopmap.errors import ConfigError, ShapeError
from coopmap.geometry import opv2v_intrinsics, quat_xyzw_to_rotmat, ray_directions
from coopmap.models.config import ModelConfig
from coopmap.models.contract import assemble_outputs
from coopmap.models.pose_inputs import (
    normalize_translations,
    relative_to_view0,
    stacked_pose_inputs,
    wants_pose_inputs,
)

_DENSE_FEATURES = 16
_DENSE_OUT = 6  # ray offset (3), log-depth, confidence logit, mask logit
_MAX_LOG = 20.0  # clamp of log-depth / log-scale / confidence logits (exp(20) ~ 5e8)
#: the geometric inputs tiny understands.
TINY_GEOMETRIC_INPUTS = ("camera_pose_quats", "camera_pose_trans", "is_metric_scale")
#: the submodules that exist only with pose inputs
_POSE_INPUT_MODULES = ("cam_rot_encoder.", "cam_trans_encoder.", "cam_trans_scale_encoder.", "fusion_norm.")


def sincos_position_codes(h: int, w: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed 2-D sine-cosine position codes of an h x w token grid: (h*w, dim), dim a multiple of 4."""
    quarter = dim // 4
    freqs = 1.0 / (10000.0 ** (torch.arange(quarter, device=device, dtype=torch.float64) / quarter))
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float64), torch.arange(w, device=device, dtype=torch.float64),
        indexing="ij",
    )
    ang_y, ang_x = ys.reshape(-1, 1) * freqs, xs.reshape(-1, 1) * freqs
    codes = torch.cat([ang_y.sin(), ang_y.cos(), ang_x.sin(), ang_x.cos()], dim=1)
    return codes.to(dtype)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)). Input (N, L, D)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, L, D = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(N, L, 3, self.num_heads, D // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attn.transpose(1, 2).reshape(N, L, D))
        return x + self.mlp(self.norm2(x))


class TinyMapAnything(nn.Module):
    """The ``tiny`` model: ``forward(views) -> list of per-view output dicts`` (see module docstring)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        _validate(cfg)
        D, p = cfg.embed_dim, cfg.patch_size
        self.patch_size = p
        self.embed_dim = D
        self.ray_prior_fov_deg = cfg.ray_prior_fov_deg
        self.patch_embed = nn.Conv2d(3, D, kernel_size=p, stride=p)
        self.ref_view_embed = nn.Parameter(torch.zeros(D))
        self.scale_token = nn.Parameter(torch.randn(D) * 0.02)
        self.blocks = nn.ModuleList(Block(D, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(D)
        self.dense_linear = nn.Linear(D, p * p * _DENSE_FEATURES)
        self.dense_conv = nn.Conv2d(_DENSE_FEATURES, _DENSE_OUT, kernel_size=3, padding=1)
        self.pose_mlp = nn.Sequential(nn.Linear(D, D), nn.GELU())
        self.pose_out = nn.Linear(D, 7)
        self.scale_head = nn.Linear(D, 1)
        self.pose_inputs = wants_pose_inputs(cfg.geometric_inputs)
        self.metric_pose_inputs = self.pose_inputs and "is_metric_scale" in cfg.geometric_inputs
        if self.pose_inputs:  # MapAnything's cam_rot / cam_trans / cam_trans_scale encoders and fusion norm
            self.cam_rot_encoder = _global_encoder(4, D)
            self.cam_trans_encoder = _global_encoder(3, D)
            self.cam_trans_scale_encoder = _global_encoder(1, D)
            self.fusion_norm = nn.LayerNorm(D)
        self._init_heads(cfg.init_scale_m)
        if self.pose_inputs:  # the correction starts at exactly the identity: the inputs pass through
            nn.init.zeros_(self.pose_out.weight)

    def adapt_start_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Start this model from ``state`` of the same architecture trained *without* pose inputs (e.g. the shipped
        pretrained model): every shared tensor is loaded; the pose-input encoders keep their fresh initialisation
        and the pose head's last layer its zero start, so the new model passes its input poses through (its pose
        head predicted absolute poses before, a correction now). Any other state is returned unchanged."""
        if not self.pose_inputs or any(k.startswith(_POSE_INPUT_MODULES) for k in state):
            return state
        own = self.state_dict()
        fresh = {k: v for k, v in own.items() if k.startswith((*_POSE_INPUT_MODULES, "pose_out."))}
        return {**{k: v for k, v in state.items() if not k.startswith("pose_out.")}, **fresh}

    def _init_heads(self, init_scale_m: float) -> None:
        nn.init.normal_(self.ref_view_embed, std=0.02)
        for layer in (self.dense_conv, self.pose_out, self.scale_head):
            nn.init.normal_(layer.weight, std=1e-3)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            self.pose_out.bias[6] = 1.0  # quaternion (0, 0, 0, 1): identity rotation
            self.scale_head.bias.fill_(math.log(init_scale_m))

    def forward(self, views: Sequence[Mapping]) -> list[dict[str, torch.Tensor]]:
        img = _stack_images(views, self.patch_size)  # (V, B, 3, H, W)
        V, B, _, H, W = img.shape
        h, w, D = H // self.patch_size, W // self.patch_size, self.embed_dim
        x = self.patch_embed(img.flatten(0, 1)).flatten(2).transpose(1, 2)  # (V*B, h*w, D)
        x = x + sincos_position_codes(h, w, D, device=x.device, dtype=x.dtype)
        x = x.reshape(V, B, h * w, D)
        pose_in = None
        if self.pose_inputs:
            pose_in = self._pose_inputs(views, x)
            x = self.fusion_norm(x + self._encode_poses(views, *pose_in)[:, :, None, :])
        is_ref = torch.zeros(V, 1, 1, 1, device=x.device, dtype=x.dtype)
        is_ref[0] = 1.0
        x = x + is_ref * self.ref_view_embed
        scale_tok = self.scale_token.expand(B, 1, D)
        for k, block in enumerate(self.blocks):
            if k % 2 == 0:  # within each view
                x = block(x.reshape(V * B, h * w, D)).reshape(V, B, h * w, D)
            else:  # across all views of a sample, plus the scale token
                seq = torch.cat([x.permute(1, 0, 2, 3).reshape(B, V * h * w, D), scale_tok], dim=1)
                seq = block(seq)
                x = seq[:, :-1].reshape(B, V, h * w, D).permute(1, 0, 2, 3)
                scale_tok = seq[:, -1:]
        with torch.autocast(device_type=x.device.type, enabled=False):  # heads in float32 (like MapAnything)
            x, scale_tok = self.norm(x.float()), self.norm(scale_tok.float())
            log_s = self.scale_head(scale_tok)[:, 0]  # (B, 1)
            metric_scale = log_s.clamp(-_MAX_LOG, _MAX_LOG).exp().clamp_min(1e-8)
            dense = self._dense(x.reshape(V * B, h, w, D)).reshape(V, B, _DENSE_OUT, H, W)
            pose = self.pose_out(self.pose_mlp(x.mean(dim=2)))  # (V, B, 7)
            if pose_in is not None:
                pose = _apply_correction(pose, *pose_in, metric_scale)
            prior = self._prior_rays(H, W, x)
            return [self._view_outputs(dense[i], pose[i], prior, metric_scale) for i in range(V)]

    def _pose_inputs(self, views: Sequence[Mapping], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The shared pose inputs relative to view 0, float32: quats (V, B, 4), trans (V, B, 3) metres."""
        q, t = stacked_pose_inputs(views)
        return relative_to_view0(q.to(like.device, torch.float32), t.to(like.device, torch.float32))

    def _encode_poses(self, views: Sequence[Mapping], q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(V, B, D) pose features: rotation + normalised translation (+ log translation scale if metric)."""
        t_norm, f = normalize_translations(t)
        feat = self.cam_rot_encoder(q) + self.cam_trans_encoder(t_norm)
        if self.metric_pose_inputs:
            metric = torch.stack([torch.as_tensor(v["is_metric_scale"], device=q.device).reshape(-1) for v in views])
            scale = self.cam_trans_scale_encoder(torch.log(f + 1e-8)[None, :, None].expand(q.shape[0], -1, 1))
            feat = feat + scale * metric.to(scale.dtype)[..., None]
        return feat

    def _dense(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, h, w, D) tokens -> (N, 6, H, W) dense raw outputs."""
        feat = self.dense_linear(tokens).permute(0, 3, 1, 2)  # (N, p*p*F, h, w)
        feat = F.pixel_shuffle(feat, self.patch_size)  # (N, F, H, W)
        return self.dense_conv(F.gelu(feat))

    def _prior_rays(self, H: int, W: int, like: torch.Tensor) -> torch.Tensor:
        K = torch.as_tensor(opv2v_intrinsics(W, H, self.ray_prior_fov_deg), dtype=torch.float64)
        return ray_directions(K, H, W).to(device=like.device, dtype=like.dtype)  # (H, W, 3)

    def _view_outputs(self, dense: torch.Tensor, pose: torch.Tensor, prior: torch.Tensor, s: torch.Tensor) -> dict:
        raw = dense.permute(0, 2, 3, 1)  # (B, H, W, 6)
        rays = prior + raw[..., 0:3]
        depth = raw[..., 3:4].clamp(-_MAX_LOG, _MAX_LOG).exp()
        conf = 1.0 + raw[..., 4].clamp(max=_MAX_LOG).exp()
        return assemble_outputs(rays, depth, pose[:, 3:7], pose[:, 0:3], s, conf, raw[..., 5])


def _global_encoder(in_chans: int, dim: int) -> nn.Module:
    """A small MLP for one global input (MapAnything's ``global_rep_encoder``): (..., in_chans) -> (..., dim)."""
    return nn.Sequential(nn.Linear(in_chans, dim), nn.GELU(), nn.Linear(dim, dim))


def _apply_correction(pose: torch.Tensor, q_in: torch.Tensor, t_in: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Raw pose outputs (V, B, 7) read as a correction [t (metres), q XYZW] in each camera's frame, applied to the
    input poses (V, B, 4), (V, B, 3): ``T_out = T_in [R(q), t]``. Returns (V, B, 7) raw outputs whose translation
    is divided by the metric scale s (B, 1), since the contract multiplies it back."""
    q = roma.quat_product(roma.quat_normalize(q_in), pose[..., 3:7])
    t = t_in + (quat_xyzw_to_rotmat(q_in) @ pose[..., 0:3, None])[..., 0]
    return torch.cat([t / s, q], dim=-1)


def _validate(cfg: ModelConfig) -> None:
    unknown = sorted(set(cfg.geometric_inputs) - set(TINY_GEOMETRIC_INPUTS))
    if unknown:
        raise ConfigError(f"model.geometric_inputs: tiny takes only {list(TINY_GEOMETRIC_INPUTS)}, got {unknown}")
    if cfg.embed_dim % 4 or cfg.embed_dim % cfg.num_heads:
        raise ConfigError(
            f"model.embed_dim={cfg.embed_dim} must be a multiple of 4 and of model.num_heads={cfg.num_heads}"
        )
    if cfg.depth < 2:
        raise ConfigError(f"model.depth={cfg.depth}: tiny needs >= 2 blocks (odd blocks attend across views)")
    if cfg.patch_size < 1 or cfg.init_scale_m <= 0:
        raise ConfigError(f"model.patch_size ({cfg.patch_size}) and model.init_scale_m ({cfg.init_scale_m}) must be > 0")


def _stack_images(views: Sequence[Mapping], patch: int) -> torch.Tensor:
    if len(views) == 0:
        raise ShapeError("tiny: got no views")
    shape0 = tuple(views[0]["img"].shape)
    for i, view in enumerate(views):
        shape = tuple(view["img"].shape)
        if len(shape) != 4 or shape[1] != 3 or shape != shape0:
            raise ShapeError(f"view {i}, 'img': expected (B,3,H,W) equal to view 0's {shape0}, got {shape}")
    H, W = shape0[2], shape0[3]
    if H % patch or W % patch:
        raise ShapeError(f"'img': H={H} and W={W} must be multiples of model.patch_size={patch}")
    return torch.stack([view["img"] for view in views])
