"""The shipped pretrained tiny model: the demo's Stage-2 start and distillation teacher (``coopmap pretrain``).

Files beside this module: ``tiny_synth.pt`` (``{"model": state_dict, "model_config": {...}}``, tensors only, loads
with ``weights_only=True``) and ``tiny_synth.json`` (its manifest: the command that made it, data seeds and sizes,
steps, sha256 of the weights file, and its test figures beside the trivial references).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from coopmap.errors import CheckpointError

NAME = "tiny_synth"
_HERE = Path(__file__).resolve().parent


def pretrained_path() -> Path:
    """The shipped weights file; CheckpointError naming the fix when it is missing."""
    path = _HERE / f"{NAME}.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: the shipped pretrained model is missing; rebuild it with `make pretrained` "
                              "or pass --start CKPT")
    return path


def manifest() -> dict:
    """The manifest of the shipped model (tiny_synth.json)."""
    path = _HERE / f"{NAME}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable manifest of the pretrained model ({err})") from None


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
