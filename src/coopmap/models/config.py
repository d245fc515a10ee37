"""Schema of the ``model`` config group: one flat schema shared by every model (unused keys are ignored)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    #: tiny | oracle | mapanything
    name: str = "tiny"
    #: a training checkpoint (ours) or a MapAnything checkpoint / directory to start from.
    checkpoint: str | None = None
    # --- oracle: injected errors (exact, so metrics can be checked) ---
    scale: float = 1.0
    agent_offset_m: float = 0.0
    agent_rot_deg: float = 0.0
    depth_noise_m: float = 0.0
    seed: int = 0
