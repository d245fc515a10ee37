"""``coopmap export``: a coopmap checkpoint -> MapAnything's own checkpoint format.

Our checkpoints (``last.pt``, ``step_N.pt``) hold the state dict of :class:`~coopmap.models.mapanything.MapAnythingAdapter`,
every key prefixed ``model.``: MapAnything's ``load_state_dict(ckpt["model"], strict=False)`` would match none of
them and silently keep its own weights. The exported file is ``{"model": state_dict, "epoch": step, "coopmap":
{...}}`` with MapAnything's own key names (``dense_head.*`` still sharing storage with ``dpt_*_head.*``), plain data
only (loads with ``weights_only=True``), so their code loads it **strictly** (docs/models.md section 4 gives the
lines). Training with ``model=mapanything`` writes ``<run>/mapanything.pth`` the same way at its end.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from coopmap.errors import CheckpointError
from coopmap.models.checkpoint import read_checkpoint, state_dict_of

#: the key prefix of our adapter's state dict (``MapAnythingAdapter.model``).
ADAPTER_PREFIX = "model."


def mapanything_state_dict(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The adapter's state dict with MapAnything's own key names (a state dict already in them is returned as is)."""
    if state and all(k.startswith(ADAPTER_PREFIX) for k in state):
        return {k[len(ADAPTER_PREFIX):]: v for k, v in state.items()}
    if any(k.startswith(ADAPTER_PREFIX) for k in state):
        mixed = sorted(k for k in state if not k.startswith(ADAPTER_PREFIX))[:4]
        raise CheckpointError(f"{source}: mixes adapter keys ('model.*') with others ({mixed}); not one model's weights")
    return dict(state)


def export_payload(ckpt: Mapping[str, Any], source: str) -> dict[str, Any]:
    """MapAnything's checkpoint dict from one of ours (or theirs: then only ``model`` and ``epoch`` are kept).

    Raises:
        CheckpointError: the checkpoint holds another model (``config.model.name`` is not mapanything).
    """
    config = ckpt.get("config") if isinstance(ckpt.get("config"), Mapping) else None
    name = (config or {}).get("model", {}).get("name") if config else None
    if name not in (None, "mapanything"):
        raise CheckpointError(
            f"{source}: a model={name} checkpoint; only model=mapanything checkpoints hold MapAnything weights")
    state = mapanything_state_dict(state_dict_of(ckpt, source), source)
    step = ckpt.get("step", ckpt.get("epoch", 0))
    payload: dict[str, Any] = {"model": state, "epoch": int(step) if isinstance(step, (int, float)) else 0}
    payload["coopmap"] = {"source": os.path.abspath(source), "step": payload["epoch"], "config": config or {}}
    return payload


def save_payload(payload: Mapping[str, Any], out: str | os.PathLike[str]) -> None:
    """Write atomically (a temp file renamed over ``out``)."""
    from coopmap.train.checkpoint import atomic_torch_save

    atomic_torch_save(dict(payload), out)


def export_checkpoint(src: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``src`` (safely), write MapAnything's format to ``out``; returns the payload written."""
    src = os.fspath(src)
    payload = export_payload(read_checkpoint(src), src)
    save_payload(payload, out)
    return payload


def export_model(model: torch.nn.Module, out: str | os.PathLike[str], step: int, config: Mapping | None = None,
                 source: str = "training run") -> None:
    """Write a training run's model (the adapter, possibly in DDP) in MapAnything's format (the run's end)."""
    net = getattr(model, "module", model)
    ckpt = {"model": net.state_dict(), "step": step, "config": dict(config or {})}
    save_payload(export_payload(ckpt, source), out)


def default_output(src: str | os.PathLike[str]) -> Path:
    """``runs/x/last.pt`` -> ``runs/x/last.mapanything.pth``."""
    src = Path(src)
    return src.with_name(f"{src.stem}.mapanything.pth")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="coopmap export",
        description="Write a coopmap checkpoint (last.pt, step_N.pt of a model=mapanything run) in MapAnything's "
                    "own format: {'model': state_dict with their key names, 'epoch', 'coopmap'}; their code loads "
                    "it strictly (see docs/models.md).",
    )
    parser.add_argument("checkpoint", help="a coopmap checkpoint of a model=mapanything run")
    parser.add_argument("-o", "--out", help="output file (default: <checkpoint stem>.mapanything.pth beside it)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else default_output(args.checkpoint)
    payload = export_checkpoint(args.checkpoint, out)
    print(f"wrote {out}: {len(payload['model'])} tensors with MapAnything's key names (step {payload['epoch']}); "
          f"in MapAnything: model.load_state_dict(torch.load('{out}', weights_only=True)['model'])")
    return 0
