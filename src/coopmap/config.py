"""Hydra configuration: composition of the packaged configs, validated by structured schemas.

The YAML files live in ``coopmap/configs`` (shipped with the package, so every command works from any directory).
Each component owns its schema dataclass next to its code (``coopmap.data.config.DataConfig``, ...); this module
assembles them into the root schemas, registers them in Hydra's ConfigStore and composes configs from overrides.
A misspelt key or a wrong type raises :class:`~coopmap.errors.ConfigError` naming the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from coopmap.data.config import DataConfig
from coopmap.errors import ConfigError
from coopmap.models.config import ModelConfig


@dataclass
class TeacherCacheConfig:
    """``coopmap teacher-cache``: run a frozen teacher once over a split and store its distillation targets."""

    data: DataConfig = field(default_factory=DataConfig)
    #: the teacher (model.checkpoint: its weights; their sha256 is recorded in the cache).
    model: ModelConfig = field(default_factory=ModelConfig)
    #: the cache folder (manifest.json + samples/).
    out_dir: str = "teacher_cache"
    #: also store the teacher's depth, average-pooled over depth_stride x depth_stride pixels.
    store_depth: bool = False
    depth_stride: int = 4
    #: auto (cuda if available) | cpu | cuda
    device: str = "auto"
    seed: int = 0


def _root_schemas() -> dict[str, type]:
    """Root schemas by primary config name (imported here: every component's schema joins them)."""
    from coopmap.evaluation.config import EvalRunConfig
    from coopmap.train.config import TrainConfig

    return {"teacher_cache": TeacherCacheConfig, "train": TrainConfig, "eval": EvalRunConfig}

_registered = False


def _register() -> None:
    global _registered
    if _registered:
        return
    from coopmap.train.config import OPEN_DICT_KEYS

    cs = ConfigStore.instance()
    for name, schema in _root_schemas().items():
        node = OmegaConf.structured(schema)
        for key in OPEN_DICT_KEYS:  # maps with user-chosen keys (trainer.lr_per_module.encoder=0.1 must work)
            if OmegaConf.select(node, key) is not None:
                OmegaConf.set_struct(OmegaConf.select(node, key), False)
        cs.store(name=f"schema_{name}", node=node)
    _registered = True


def compose(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the packaged config ``config_name`` with Hydra command-line style ``overrides``.

    Returns a resolved, struct-mode DictConfig. Raises ConfigError on an unknown key, a bad type or a missing
    mandatory value (the message names the key).
    """
    _register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="coopmap.configs", version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
        OmegaConf.resolve(cfg)
        missing = sorted(OmegaConf.missing_keys(cfg))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_one_line(err)) from err
    finally:
        GlobalHydra.instance().clear()
    if missing:
        raise ConfigError(f"missing required value(s): {', '.join(missing)} (set them as overrides, e.g. {missing[0]}=...)")
    OmegaConf.set_struct(cfg, True)
    return cfg


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain Python containers (for checkpoints: loadable with ``weights_only=True``)."""
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]


def _one_line(err: BaseException) -> str:
    """Hydra/OmegaConf errors as one line that names the key (their text, plus the underlying cause)."""
    text = " ".join(str(err).split())
    if text.startswith("Could not override '"):
        key = text.split("'")[1]
        return f"unknown config key '{key}' (check its spelling)"
    cause = err.__cause__ or err.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {' '.join(str(cause).split())}"
    for noise in (" Config search path:", "\n    full_key"):
        text = text.split(noise)[0]
    return text.replace("full_key: ", "key: ")
