"""``build_model(model_cfg)``: the one entry point that turns a ``model`` config into a module.

Registry: ``tiny`` (:class:`~coopmap.models.tiny.TinyMapAnything`), ``oracle``
(:class:`~coopmap.models.oracle.Oracle`), ``mapanything`` (:func:`~coopmap.models.mapanything.load_mapanything`).
For tiny and oracle, ``model.checkpoint`` (ours: ``{"model": state_dict, ...}``) is loaded strictly, with
``weights_only=True``; mapanything loads its own (non-strict, their convention).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields

from omegaconf import DictConfig, OmegaConf
from torch import nn

from coopmap.errors import ConfigError
from coopmap.models.checkpoint import load_model_checkpoint
from coopmap.models.config import ModelConfig


def _build_tiny(cfg: ModelConfig) -> nn.Module:
    from coopmap.models.tiny import TinyMapAnything

    return TinyMapAnything(cfg)


def _build_oracle(cfg: ModelConfig) -> nn.Module:
    from coopmap.models.oracle import Oracle

    return Oracle(cfg)


def _build_mapanything(cfg: ModelConfig) -> nn.Module:
    from coopmap.models.mapanything import load_mapanything

    return load_mapanything(cfg)


#: model name -> builder(ModelConfig) -> nn.Module.
MODEL_REGISTRY: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "tiny": _build_tiny,
    "oracle": _build_oracle,
    "mapanything": _build_mapanything,
}
#: models that load ``model.checkpoint`` themselves.
_SELF_LOADING = {"mapanything"}


def as_model_config(cfg: ModelConfig | DictConfig | Mapping) -> ModelConfig:
    """A :class:`ModelConfig` from the dataclass itself, a composed DictConfig (``cfg.model``) or a plain dict."""
    if isinstance(cfg, ModelConfig):
        return cfg
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    if not isinstance(plain, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(plain).__name__}")
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(plain) - known)
    if unknown:
        raise ConfigError(f"unknown model config key(s) {unknown} (check their spelling)")
    merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), dict(plain))
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def build_model(model_cfg: ModelConfig | DictConfig | Mapping) -> nn.Module:
    """Build the model named by ``model_cfg.name`` and load ``model_cfg.checkpoint`` if set.

    Raises:
        ConfigError: unknown model name or bad sizes. CheckpointError: unreadable / mismatching checkpoint
        (naming the file and the keys). MapAnythingNotInstalledError: model=mapanything without the package.
    """
    cfg = as_model_config(model_cfg)
    if cfg.name not in MODEL_REGISTRY:
        raise ConfigError(f"model.name='{cfg.name}' is not a model (choose one of {', '.join(MODEL_REGISTRY)})")
    model = MODEL_REGISTRY[cfg.name](cfg)
    if cfg.checkpoint and cfg.name not in _SELF_LOADING:
        load_model_checkpoint(model, cfg.checkpoint, what=f"model '{cfg.name}'")
    return model
