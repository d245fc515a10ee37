"""Settings of ``coopmap filter`` (one dataclass, every field documented; the CLI only fills it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from coopmap.errors import ConfigError
from coopmap.metrics import MetricsConfig

FORMATS = ("npz", "pcd", "ply", "kitti")
POSES = ("gt", "pred")
BOX_SOURCES = ("gt", "pred", "none")
FRAMES = ("native", "rh")
INTENSITIES = ("conf", "zero")


@dataclass
class FilterConfig:
    """Filters in the order applied (docs/filtering.md); each one has an "off" value."""

    #: 1. range crop in the ego LiDAR frame (bounds included); off: ``range_crop=False``.
    range_crop: bool = True
    x_range: list[float] = field(default_factory=lambda: [-50.0, 50.0])
    y_range: list[float] = field(default_factory=lambda: [-50.0, 50.0])
    z_range: list[float] = field(default_factory=lambda: [-3.0, 4.0])
    #: 2. height band: keep heights above the ground (ego vehicle frame z) in [z_min, z_max]; None: unbounded.
    z_min: float | None = -0.5
    z_max: float | None = 4.0
    #: 3. keep confidences >= this percentile of the frame's (0: off).
    conf_percentile: float = 0.0
    #: 4. voxel downsampling, cell side in metres, centroids (0: off).
    voxel: float = 0.1
    #: 5. statistical outlier removal: mean distance to the k nearest > mean + sor_std * std is dropped (k 0: off).
    sor_k: int = 16
    sor_std: float = 2.0
    #: 6. multi-frame support over the K previous available frames (0: off); keep points seen in >= M frames.
    frames: int = 5
    min_support: int = 2
    #: support cell (m): a history frame supports a point if it has a point in the same or an adjacent cell.
    support_cell: float = 0.4
    #: ego motion between frames: gt (T_world_from_egolidar of the npz) | pred (ICP of the predicted clouds).
    pose: str = "gt"
    #: ICP: voxel of both clouds (m), correspondence distance per stage (m), iterations per stage.
    icp_voxel: float = 0.3
    icp_max_corr: list[float] = field(default_factory=lambda: [2.0, 1.0, 0.5, 0.25])
    icp_iters: int = 15
    #: box rule: points inside the frame's boxes (grown by box_margin m) are exempt from filters 5 and 6
    #: (gt: the npz's GT boxes; pred: its pred_boxes_* arrays when present; none).
    keep_boxes: str = "gt"
    box_margin: float = 0.3
    #: outputs: formats written per frame, their frame (native = OPV2V left-handed, y right; rh = ours, y left)
    #: and the intensity channel (conf: 1 - 1/conf in [0, 1); zero).
    formats: list[str] = field(default_factory=lambda: ["pcd"])
    frame: str = "native"
    intensity: str = "conf"
    #: modes to filter (empty: every mode found in the eval output).
    modes: list[str] = field(default_factory=list)
    progress: bool = True
    #: metric settings of filter_metrics.csv (the defaults of ``coopmap eval``; GT not cropped to frustums).
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def check(self) -> FilterConfig:
        """Raise ConfigError naming the first bad field; returns self."""
        choices = {"pose": (self.pose, POSES), "keep_boxes": (self.keep_boxes, BOX_SOURCES),
                   "frame": (self.frame, FRAMES), "intensity": (self.intensity, INTENSITIES)}
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ConfigError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"formats: expected one or more of {', '.join(FORMATS)}, got {self.formats}")
        for name in ("x_range", "y_range", "z_range"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ConfigError(f"{name}: need low < high, got [{lo}, {hi}]")
        if self.z_min is not None and self.z_max is not None and not self.z_min < self.z_max:
            raise ConfigError(f"z_min must be < z_max, got {self.z_min} and {self.z_max}")
        if not 0.0 <= self.conf_percentile < 100.0:
            raise ConfigError(f"conf_percentile: expected [0, 100), got {self.conf_percentile}")
        numbers = {"voxel": self.voxel >= 0, "sor_k": self.sor_k >= 0, "sor_std": self.sor_std >= 0,
                   "frames": self.frames >= 0, "min_support": self.min_support >= 1,
                   "support_cell": self.support_cell > 0, "box_margin": self.box_margin >= 0,
                   "icp_voxel": self.icp_voxel >= 0, "icp_iters": self.icp_iters >= 1,
                   "icp_max_corr": bool(self.icp_max_corr) and min(self.icp_max_corr) > 0}
        for name, ok in numbers.items():
            if not ok:
                raise ConfigError(f"{name}: out of range ({getattr(self, name)})")
        return self

    @property
    def history_window(self) -> int:
        """Timestamp units a history frame may lie behind the current one: 2 K x 2 (K frames 2 units apart,
        half of them may be missing)."""
        return 4 * self.frames
