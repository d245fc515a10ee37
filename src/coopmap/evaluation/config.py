"""Schemas of the ``eval`` node and of the root ``eval`` config."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from coopmap.data.config import DataConfig
from coopmap.metrics.frame import MetricsConfig
from coopmap.models.config import ModelConfig


@dataclass
class EvalConfig:
    #: evaluate each frame in these modes: single (the ego's 4 cameras) and/or coop (ego + cooperating CAVs).
    modes: list[str] = field(default_factory=lambda: ["single", "coop"])
    #: point-cloud, BEV, floating and vehicle metrics (needs the LiDAR sweeps); False: image metrics only.
    pc_metrics: bool = True
    #: save the predicted and GT point clouds of every frame (points/<mode>/<scenario>_<timestamp>_<ego>.npz).
    save_points: bool = False
    #: frames per metric listed in worst_frames.csv.
    worst_k: int = 10
    #: evaluate at most this many frames per mode (0: all).
    max_frames: int = 0
    #: data-loading worker processes.
    workers: int = 0
    #: threads computing frame metrics (GT LiDAR, kd-trees, saved clouds) while the next frames load and run
    #: through the model; 0: in the main thread. Rows are written as frames finish; the final CSV is sorted.
    metric_workers: int = 0
    device: str = "auto"
    progress: bool = True
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


@dataclass
class EvalRunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    #: where coop_metrics.csv, summary.json, worst_frames.csv (and points/) go; re-running into it resumes.
    out_dir: str = MISSING
    seed: int = 0
