"""``mapanything``: the real MapAnything model through the ``mapanything`` package, when it is installed.

The package is not on PyPI; install it yourself on a GPU machine with
``pip install git+https://github.com/facebookresearch/map-anything`` (it pulls its own dependencies and, for DINOv2
encoders, downloads weights through ``torch.hub``). Everything here imports it lazily: without it,
:func:`import_mapanything` raises :class:`MapAnythingNotInstalledError` with that instruction.

Loading (:func:`load_mapanything`):
- ``model.hydra_config`` unset: ``MapAnything.from_pretrained(model.pretrained)`` (a hub id such as
  ``facebook/map-anything-apache`` or a local directory saved by ``save_pretrained``);
- ``model.hydra_config`` set: their Hydra model config (``model_str`` + ``model_config``) builds the architecture
  through ``mapanything.models.init_model``;
- then ``model.checkpoint`` (theirs or ours) is loaded on top with ``strict=False``: ``{"model": state_dict}``.

In training the adapter calls ``forward`` (never ``infer()``, which runs in inference mode) on inputs converted by
:func:`views_to_mapanything_inputs`, with the images re-normalised for the model's ``encoder.data_norm_type``.
:func:`save_mapanything_checkpoint` writes their checkpoint format so their tools load our fine-tuned weights.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from coopmap.errors import CheckpointError, ConfigError, CoopmapError, ShapeError
from coopmap.models.checkpoint import read_checkpoint, state_dict_of
from coopmap.models.config import ModelConfig
from coopmap.models.pose_inputs import POSE_INPUT_KEYS, deterministic_geometric_config, shared_pose_input

INSTALL_COMMAND = "pip install git+https://github.com/facebookresearch/map-anything"

#: image normalisations MapAnything knows (spec section 1): (mean, std) per RGB channel of rgb/255.
NORM_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "dinov2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "croco": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "dust3r": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "identity": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
#: keys always passed: the image and its normalisation (a list of str, never a bare string).
IMAGE_INPUT_KEYS = ("img", "data_norm_type")
#: optional geometric inputs MapAnything accepts (spec section 1), passed only when asked for.
GEOMETRIC_INPUT_KEYS = ("ray_directions_cam", "depth_along_ray", "camera_pose_quats", "camera_pose_trans", "is_metric_scale")
#: bookkeeping keys their code carries along.
INFO_KEYS = ("instance", "idx", "true_shape")


class MapAnythingNotInstalledError(CoopmapError, ImportError):
    """The ``mapanything`` package is needed (model=mapanything) but not installed."""


class MapAnythingImportError(CoopmapError, ImportError):
    """``mapanything`` is installed but does not import (a missing or broken dependency)."""


def _missing_requirements(dist: str = "mapanything") -> list[str]:
    """Requirements ``dist`` declares (no extras) whose distributions are not installed."""
    from importlib import metadata

    try:
        requires = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return []
    missing = []
    for req in requires:
        if "extra ==" in req:
            continue
        name = re.split(r"[\s;<>=!~\[(]", req.strip(), maxsplit=1)[0]
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def import_mapanything() -> Any:
    """``mapanything.models`` (has ``MapAnything`` and ``init_model``), or a one-line error that tells a missing
    package (:class:`MapAnythingNotInstalledError`) from an installed one whose dependency is missing or broken
    (:class:`MapAnythingImportError`, naming the module that failed and every declared requirement not installed)."""
    try:
        return importlib.import_module("mapanything.models")
    except Exception as err:  # ImportError for a missing module; RuntimeError/AttributeError for a broken build
        try:
            spec = importlib.util.find_spec("mapanything")
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            raise MapAnythingNotInstalledError(
                f"model=mapanything needs the 'mapanything' package, which is not installed ({err}). Install it "
                f"(on a GPU machine, in this environment) with: {INSTALL_COMMAND} ; or use model=tiny / model=oracle"
            ) from err
        where = os.path.dirname(spec.origin) if spec.origin else "?"
        name = getattr(err, "name", None) if isinstance(err, ModuleNotFoundError) else None
        failed = name.split(".")[0] if name else None  # the distribution to install: timm for timm.layers
        if failed == "mapanything":
            what, failed = f"its own module '{name}' is missing (an incomplete install?)", None
        else:
            what = (f"its dependency '{failed}' is missing" if failed
                    else f"importing it fails with {type(err).__name__}: {' '.join(str(err).split())[:200]}")
        missing = _missing_requirements()
        extra = f"; requirements it declares that are not installed: {', '.join(missing)}" if missing else ""
        hint = f"pip install {failed}" if failed else "check that torch, torchvision and uniception match"
        raise MapAnythingImportError(f"mapanything is installed ({where}) but {what}{extra} ({hint})") from err


def renormalize_images(img: torch.Tensor, from_type: str, to_type: str) -> torch.Tensor:
    """(B,3,H,W) images normalised for ``from_type`` -> normalised for ``to_type`` (spec section 1)."""
    for name in (from_type, to_type):
        if name not in NORM_STATS:
            raise ConfigError(f"unknown data_norm_type '{name}' (one of {', '.join(NORM_STATS)})")
    if from_type == to_type or NORM_STATS[from_type] == NORM_STATS[to_type]:
        return img
    m0, s0, m1, s1 = (
        torch.tensor(v, dtype=img.dtype, device=img.device).reshape(1, 3, 1, 1)
        for v in (*NORM_STATS[from_type], *NORM_STATS[to_type])
    )
    return (img * s0 + m0 - m1) / s1


def views_to_mapanything_inputs(
    views: Sequence[Mapping],
    data_norm_type: str | None = None,
    geometric_inputs: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Our batch views -> MapAnything's input views: only the keys it accepts (spec sections 1-2).

    Args:
        views: V batch views (docs/views.md).
        data_norm_type: the model's normalisation; images are re-normalised to it (None: keep the views').
        geometric_inputs: subset of :data:`GEOMETRIC_INPUT_KEYS` to pass (default: images only); the pose inputs
            ``camera_pose_quats`` / ``_trans`` are the views' shared poses (``shared_camera_pose_*``), not the GT.
    Returns:
        V dicts with ``img``, ``data_norm_type`` (a list of B str), the requested geometric inputs and
        ``instance``/``idx``/``true_shape`` when present.
    """
    unknown = sorted(set(geometric_inputs) - set(GEOMETRIC_INPUT_KEYS))
    if unknown:
        raise ConfigError(f"model.geometric_inputs: {unknown} are not MapAnything inputs (choose from {list(GEOMETRIC_INPUT_KEYS)})")
    out = []
    for i, view in enumerate(views):
        norms = view["data_norm_type"]
        norms = [norms] * view["img"].shape[0] if isinstance(norms, str) else list(norms)
        img = view["img"]
        target = data_norm_type or norms[0]
        if any(n != target for n in norms):
            img = torch.stack([renormalize_images(img[b : b + 1], n, target)[0] for b, n in enumerate(norms)])
        entry: dict[str, Any] = {"img": img, "data_norm_type": [target] * img.shape[0]}
        for key in tuple(geometric_inputs) + INFO_KEYS:
            if key in POSE_INPUT_KEYS:  # the poses the agents share, never the GT (models/pose_inputs.py)
                entry[key] = shared_pose_input(view, key, i)
            elif key in view:
                entry[key] = view[key]
            elif key in geometric_inputs:
                raise ConfigError(f"model.geometric_inputs asks for '{key}' but view {i} has no such key")
        out.append(entry)
    return out


def model_data_norm_type(net: nn.Module) -> str:
    """The image normalisation a MapAnything model expects (its ``encoder.data_norm_type``)."""
    norm = getattr(getattr(net, "encoder", None), "data_norm_type", None) or getattr(net, "data_norm_type", None)
    if isinstance(norm, (list, tuple)):
        norm = norm[0]
    if norm not in NORM_STATS:
        raise ConfigError(f"cannot tell the MapAnything model's data_norm_type (got {norm!r})")
    return norm


class MapAnythingAdapter(nn.Module):
    """Wraps a MapAnything model: ``forward(views)`` converts our views and calls its ``forward``."""

    #: ``trainer.lr_per_module`` names MapAnything's own submodules (``encoder``, ...), not ours (``model``).
    lr_root_name = "model"

    def __init__(self, net: nn.Module, geometric_inputs: Sequence[str] = ()):
        super().__init__()
        self.model = net
        self.data_norm_type = model_data_norm_type(net)
        self.geometric_inputs = tuple(geometric_inputs)
        config = getattr(net, "geometric_input_config", None)
        if self.geometric_inputs and hasattr(config, "update"):  # use exactly the asked inputs, as their infer()
            config.update(deterministic_geometric_config(self.geometric_inputs))
        patch = getattr(getattr(net, "encoder", None), "patch_size", None)
        self.patch_size = int(patch[0] if isinstance(patch, (tuple, list)) else patch) if patch else None

    def check_resolution(self, width: int, height: int) -> None:
        """Raise ShapeError (one line, with the nearest valid size) unless W and H are multiples of the encoder's
        patch size (14 for DINOv2, 16 for CroCo): their encoder would fail with an AssertionError."""
        p = self.patch_size
        if p and (width % p or height % p):
            name = getattr(self.model.encoder, "name", type(self.model.encoder).__name__)
            fit = [max(p, round(width / p) * p), max(p, round(height / p) * p)]
            raise ShapeError(f"images are {width}x{height} (W x H) but MapAnything's encoder {name} needs multiples of "
                             f"its patch size {p}: set data.resolution={fit} data.patch_size={p}")

    def forward(self, views: Sequence[Mapping]) -> list[dict[str, torch.Tensor]]:
        H, W = views[0]["img"].shape[-2:]
        self.check_resolution(int(W), int(H))
        inputs = views_to_mapanything_inputs(views, self.data_norm_type, self.geometric_inputs)
        return self.model(inputs)


def load_mapanything(cfg: ModelConfig) -> MapAnythingAdapter:
    """Build MapAnything from the config (see module docstring) and wrap it in :class:`MapAnythingAdapter`."""
    if cfg.hydra_overrides and not cfg.hydra_config:
        raise ConfigError("model.hydra_overrides is set but model.hydra_config is not (give their configs folder)")
    models = import_mapanything()
    if cfg.hydra_config:
        from coopmap.models.mapanything_hydra import build_from_their_config

        net = build_from_their_config(models, cfg.hydra_config, cfg.hydra_overrides)
    else:
        net = models.MapAnything.from_pretrained(cfg.pretrained)
    if cfg.checkpoint:
        load_weights_non_strict(net, cfg.checkpoint)
    return MapAnythingAdapter(net, cfg.geometric_inputs)


def load_weights_non_strict(net: nn.Module, path: str) -> None:
    """Load ``{"model": state_dict}`` from ``path`` with ``strict=False`` (their convention).

    Keys saved from our adapter (prefix ``model.``) are accepted too. Raises CheckpointError when no key matches.
    """
    state = state_dict_of(read_checkpoint(path), path)
    own = net.state_dict()
    if not set(state) & set(own) and all(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items()}
    matched = set(state) & set(own)
    if not matched:
        raise CheckpointError(f"{path}: none of its {len(state)} tensors match the MapAnything model's keys")
    bad = [k for k in matched if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise CheckpointError(f"{path}: shape mismatches for {sorted(bad)[:8]} (another MapAnything config?)")
    net.load_state_dict(state, strict=False)


def save_mapanything_checkpoint(model: nn.Module, path: str | os.PathLike[str], **extra: Any) -> None:
    """Write MapAnything's checkpoint format ``{"model": state_dict, **extra}`` (loadable by their tools).

    Unwraps DDP (``.module``) and :class:`MapAnythingAdapter` so the keys are MapAnything's own. ``dense_head.*``
    shares tensors with ``dpt_*_head.*``: ``torch.save`` keeps shared storage once (both keys point to it on load),
    where a plain safetensors save would refuse. ``extra`` (``epoch``, ``args``...) must be tensors or plain
    containers (OmegaConf configs are converted), so the file loads with ``weights_only=True``. Written atomically.
    """
    net = getattr(model, "module", model)
    net = net.model if isinstance(net, MapAnythingAdapter) else net
    payload = {"model": net.state_dict()}
    for key, value in extra.items():
        payload[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)
