"""MapAnything's own Hydra configs -> the ``model`` node that ``mapanything.models.init_model`` builds from.

Their ``configs/model/*.yaml`` are Hydra *group* files: they interpolate into the composed config
(``${model.encoder}``, ``${machine...}``), so a lone file cannot be read with OmegaConf (spec section 8). Three forms
are accepted as ``model.hydra_config``:

- their config folder (``<repo>/configs``): composed from its ``train.yaml`` with ``model.hydra_overrides``
  (e.g. ``[model=mapanything, model/encoder=croco_512, machine=default]``), as their ``scripts/train.py`` does;
- a file inside such a folder (``<repo>/configs/model/mapanything.yaml``): composed the same way with
  ``model=<its name>`` put before the overrides;
- a composed run config (their run's ``.hydra/config.yaml``), or any YAML whose root or ``model`` node holds
  ``model_str`` and ``model_config``: read directly.

Every problem is a one-line :class:`~coopmap.errors.ConfigError` naming the file or key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from coopmap.errors import ConfigError

#: the primary config of their config tree.
PRIMARY = "train"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    for noise in (" Config search path:", " full_key:"):
        text = text.split(noise)[0]
    cause = err.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {' '.join(str(cause).split()).split(' full_key:')[0]}"
    return text


def _is_tree(folder: Path) -> bool:
    return (folder / f"{PRIMARY}.yaml").is_file() and (folder / "model").is_dir()


def _config_tree_of(path: Path) -> tuple[Path, str | None] | None:
    """(their config folder, group file inside it or None) when ``path`` is that folder or in it; else None."""
    if path.is_dir():
        return path, None
    if path.name == f"{PRIMARY}.yaml" and _is_tree(path.parent):
        return path.parent, None
    for parent in path.parents:
        if _is_tree(parent):
            return parent, path.relative_to(parent).with_suffix("").as_posix()
    return None


def compose_their_config(config_dir: str | os.PathLike[str], overrides: Sequence[str] = ()) -> DictConfig:
    """Compose their ``train.yaml`` in ``config_dir`` with Hydra ``overrides`` (their syntax)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    config_dir = Path(config_dir).absolute()
    if not (config_dir / f"{PRIMARY}.yaml").is_file():
        raise ConfigError(f"model.hydra_config: {config_dir} has no {PRIMARY}.yaml (expected MapAnything's configs/ folder)")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            return compose(config_name=PRIMARY, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"model.hydra_config: composing {config_dir}/{PRIMARY}.yaml with model.hydra_overrides="
                          f"{list(overrides)}: {_one_line(err)}") from err
    finally:
        GlobalHydra.instance().clear()


def their_model_node(hydra_config: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The ``model`` node (with ``model_str`` and ``model_config``) described by ``model.hydra_config``."""
    path = Path(hydra_config)
    if not path.exists():
        raise ConfigError(f"model.hydra_config: {path}: no such file or folder")
    in_tree = _config_tree_of(path.absolute())
    if in_tree is not None:
        tree, group = in_tree
        if group is not None:
            if not group.startswith("model/"):
                raise ConfigError(f"model.hydra_config: {path} is in their config tree {tree} but not a model config "
                                  "(give configs/model/<name>.yaml, the configs folder, or a composed run config)")
            overrides = [f"model={group[len('model/'):]}", *overrides]
        root = compose_their_config(tree, overrides)
    else:
        if overrides:
            raise ConfigError(f"model.hydra_overrides needs model.hydra_config to be their configs folder (or a file "
                              f"in it); {path} is a composed config, which takes no overrides")
        try:
            root = OmegaConf.load(path)
        except (OmegaConfBaseException, ValueError, OSError) as err:  # yaml errors are ValueError subclasses
            raise ConfigError(f"model.hydra_config: {path}: not a readable YAML config ({_one_line(err)})") from err
    node = root.model if isinstance(root, DictConfig) and "model" in root and isinstance(root.model, DictConfig) else root
    if not isinstance(node, DictConfig) or "model_str" not in node or "model_config" not in node:
        raise ConfigError(f"model.hydra_config: {path}: expected MapAnything's model config with 'model_str' and "
                          "'model_config' (at the root or under 'model')")
    return node


def build_from_their_config(models, hydra_config: str, overrides: Sequence[str] = ()):
    """``models.init_model(model_str, model_config)`` from :func:`their_model_node`; unresolvable values (e.g. a
    ``???`` machine path) are one-line ConfigErrors naming the key."""
    node = their_model_node(hydra_config, overrides)
    try:
        return models.init_model(node.model_str, node.model_config)
    except OmegaConfBaseException as err:
        raise ConfigError(f"model.hydra_config: {hydra_config}: {_one_line(err)} (set it with model.hydra_overrides, "
                          "e.g. machine=default machine.<key>=DIR, or model.encoder.pretrained_checkpoint_path=null "
                          "for a random encoder)") from err
