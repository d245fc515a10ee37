"""Reading checkpoints safely and loading state dicts with errors that name the file and the mismatch.

Every checkpoint is read with ``torch.load(..., weights_only=True)``: tensors and plain containers only, never
arbitrary pickled objects. Our checkpoints (and MapAnything's training checkpoints) are ``{"model": state_dict,
...}``; a bare state dict is accepted too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import torch
from torch import nn

from coopmap.errors import CheckpointError

_MAX_LISTED = 8


def read_checkpoint(path: str | os.PathLike[str]) -> dict:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors a user can act on.

    Raises:
        CheckpointError: missing file; truncated or corrupt file; a file holding Python objects that the safe
        loader refuses; not a dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... depending on the damage
        text = " ".join(str(err).split())
        if "weights_only" in text or "Weights only" in text:
            raise CheckpointError(
                f"{path}: holds Python objects that the safe loader (weights_only=True) refuses to unpickle; "
                f"save tensors and plain containers only ({text[:200]})"
            ) from err
        raise CheckpointError(f"{path}: not a readable torch checkpoint (truncated or corrupt?): {text[:200]}") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict (a state dict or {{'model': state_dict, ...}}), got {type(obj).__name__}")
    return obj


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
    """Load ``path`` into ``model`` strictly; a mismatch raises CheckpointError naming the file and the keys."""
    path = os.fspath(path)
    state = state_dict_of(read_checkpoint(path), path)
    problems = state_dict_mismatch(model, state)
    if problems:
        raise CheckpointError(
            f"{path}: does not fit the {what} built from the config ({'; '.join(problems)}); "
            f"was it saved with another model config (model.name, embed_dim, depth, patch_size, ...)?"
        )
    model.load_state_dict(state, strict=True)
