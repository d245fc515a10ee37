"""Schema of the ``data`` config group (validated by Hydra: a misspelt key fails)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class DataConfig:
    #: root of an OPV2V tree (real or made by ``coopmap synth``); required.
    root: str = MISSING
    #: split folder to train / evaluate on.
    split: str = "train"
    #: held-out split for periodic validation (None = no validation).
    val_split: str | None = None
    #: single (the ego's 4 cameras) | coop (ego + cooperating CAVs) | mixed (both, alternating).
    mode: str = "coop"
    #: output image size [W, H]; both multiples of ``patch_size``.
    resolution: list[int] = field(default_factory=lambda: [518, 392])
    patch_size: int = 14
    #: most agents in a coop sample (ego included), OpenCOOD uses 7, HEAL 5.
    max_cav: int = 5
    #: metres; CAVs farther from the ego do not cooperate (OpenCOOD's COM_RANGE).
    com_range: float = 70.0
    #: first = OpenCOOD's ego (first CAV in string order, never an RSU); all = every CAV is ego in turn.
    ego_policy: str = "first"
    #: sparse depth GT from the camera's own agent's LiDAR (own) or all agents' LiDAR fused (fused).
    depth_source: str = "own"
    #: fused depth only: visibility test; every return is splatted as a disc of this radius (metres) and a return
    #: more than ``occlusion_rel_tol`` (relative) behind a splat covering its pixel is dropped; 0 disables it.
    occlusion_radius: float = 0.1
    occlusion_rel_tol: float = 0.12
    #: cache the scanned index as JSON next to the data (or under ~/.cache/coopmap); see docs/data.md.
    cache_index: bool = True
    #: image normalisation (dinov2 | croco | dust3r | identity); MapAnything models set their own.
    norm_type: str = "dinov2"
    batch_size: int = 1
    num_workers: int = 0
