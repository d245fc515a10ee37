"""Reading checkpoints safely and loading state dicts with errors that name the file and the mismatch.

Every checkpoint is read with ``torch.load(..., weights_only=True)``: tensors and plain containers only, never
arbitrary pickled objects. Our checkpoints (and MapAnything's training checkpoints) are ``{"model": state_dict,
...}``; a bare state dict is accepted too.

MapAnything's training checkpoints (``checkpoint-{last,best,final,N}.pth``) also hold ``args``, the run's Hydra
config pickled as an OmegaConf ``DictConfig``, and ``best_so_far`` (a numpy float64 once they validated). The
safe loader admits exactly those data-only classes (:data:`DATA_ONLY_GLOBALS`: OmegaConf's containers, value nodes
and metadata, numpy's float scalar); every other global, anywhere in the file (also inside ``args``), is refused
before anything is constructed. OmegaConf values come back as plain containers (interpolations left unresolved).
"""

from __future__ import annotations

import collections
import hashlib
import os
import re
import typing
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.base import ContainerMetadata, Metadata
from omegaconf.nodes import AnyNode, BooleanNode, FloatNode, IntegerNode, StringNode
from torch import nn

from coopmap.errors import CheckpointError

_MAX_LISTED = 8


def _resolver_cache(default_factory: Any = None) -> collections.OrderedDict:
    """Stands in for the ``defaultdict(dict)`` of OmegaConf's resolver cache (torch's safe loader only fills plain
    dicts); the configs are converted to containers right after loading, so the cache is never used."""
    return collections.OrderedDict()


#: the only classes a checkpoint may name besides torch's tensors and plain containers: what a pickled Hydra
#: ``DictConfig`` is made of (MapAnything's ``args``) and numpy's float64 scalar (their ``best_so_far``).
DATA_ONLY_GLOBALS: list = [
    DictConfig, ListConfig, ContainerMetadata, Metadata,
    AnyNode, StringNode, IntegerNode, FloatNode, BooleanNode,
    typing.Any, dict, list, int,
    (_resolver_cache, "collections.defaultdict"),
    np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType,
    (np._core.multiarray.scalar, "numpy._core.multiarray.scalar"),
    (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
]


def _plain(value: Any) -> Any:
    """OmegaConf configs -> plain containers (unresolved: their run's resolvers are not ours); numpy scalars ->
    Python numbers; recursively through dicts and lists."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=False)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _refused_global(text: str) -> str | None:
    """The ``module.name`` torch's safe loader refused, from its message."""
    found = re.search(r"(?:GLOBAL|global) ([\w.]+)", text)
    return found.group(1) if found else None


def read_checkpoint(path: str | os.PathLike[str]) -> dict:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors a user can act on.

    Admits :data:`DATA_ONLY_GLOBALS` as well (MapAnything's checkpoints); their OmegaConf configs and numpy scalars
    are returned as plain containers and numbers.

    Raises:
        CheckpointError: missing file; truncated or corrupt file; a file holding Python objects that the safe
        loader refuses (one line naming the first refused global); not a dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(DATA_ONLY_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... depending on the damage
        text = " ".join(str(err).split())
        if "weights_only" in text or "Weights only" in text:
            name = _refused_global(text)
            raise CheckpointError(
                f"{path}: holds Python objects that the safe loader (weights_only=True) refuses to unpickle"
                f"{f' ({name})' if name else ''}; only tensors, plain containers and OmegaConf configs load"
            ) from err
        raise CheckpointError(f"{path}: not a readable torch checkpoint (truncated or corrupt?): {text[:200]}") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict (a state dict or {{'model': state_dict, ...}}), got {type(obj).__name__}")
    return {k: (v if k == "model" else _plain(v)) for k, v in obj.items()}


def state_dict_of(ckpt: Mapping, path: str) -> dict[str, torch.Tensor]:
    """The model state dict inside a checkpoint: ``ckpt["model"]`` or the checkpoint itself if it is one."""
    state = ckpt.get("model", ckpt) if isinstance(ckpt.get("model"), Mapping) else ckpt
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: no model state dict found (expected {{'model': {{name: tensor}}}})")
    return dict(state)


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between a model's state dict and ``state``: missing, unexpected, shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(own[k].shape) != tuple(state[k].shape)
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
            problems.append(f"{label} [{', '.join(items[:_MAX_LISTED])}{more}]")
    return problems


def load_model_checkpoint(model: nn.Module, path: str | os.PathLike[str], what: str = "model") -> None:
    """Load ``path`` into ``model`` strictly; a mismatch raises CheckpointError naming the file and the keys.

    A model may declare how it starts from a related checkpoint (``adapt_start_state``: the tiny model with pose
    inputs from one trained without them); the adapted state is then loaded strictly all the same.
    """
    path = os.fspath(path)
    state = state_dict_of(read_checkpoint(path), path)
    if hasattr(model, "adapt_start_state"):
        state = model.adapt_start_state(state)
    problems = state_dict_mismatch(model, state)
    if problems:
        raise CheckpointError(
            f"{path}: does not fit the {what} built from the config ({'; '.join(problems)}); "
            f"was it saved with another model config (model.name, embed_dim, depth, patch_size, ...)?"
        )
    model.load_state_dict(state, strict=True)
