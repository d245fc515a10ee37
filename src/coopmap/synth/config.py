"""Settings of the synthetic OPV2V generator: the sensor rig (spec section 2) and the user's options.

Sensor mounts are CARLA 6-vectors ``[x, y, z, roll, yaw, pitch]`` relative to the vehicle origin (x forward,
y right, z up, origin on the ground), exactly as OPV2V mounts them. The LiDAR numbers are those of OPV2V's
``data_protocol.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from coopmap.errors import ConfigError

#: Camera mounts on the vehicle (spec section 2): front, right rear, left rear, back.
CAMERA_MOUNTS: tuple[tuple[float, ...], ...] = (
    (2.5, 0.0, 1.0, 0.0, 0.0, 0.0),
    (0.0, 0.3, 1.8, 0.0, 100.0, 0.0),
    (0.0, -0.3, 1.8, 0.0, -100.0, 0.0),
    (-2.0, 0.0, 1.5, 0.0, 180.0, 0.0),
)
#: LiDAR mount on the vehicle.
LIDAR_MOUNT: tuple[float, ...] = (-0.5, 0.0, 1.9, 0.0, 0.0, 0.0)
#: Horizontal field of view of every camera, degrees.
CAMERA_FOV_DEG = 100.0


@dataclass(frozen=True)
class LidarSpec:
    """CARLA ``sensor.lidar.ray_cast`` settings used by OPV2V (the keys of ``data_protocol.yaml``)."""

    #: number of lasers, spread linearly from ``upper_fov`` to ``lower_fov``.
    channels: int = 64
    #: degrees above (+) / below (-) the horizontal plane of the sensor.
    upper_fov: float = 2.0
    lower_fov: float = -25.0
    #: metres; farther hits are not returned.
    range: float = 120.0
    #: points per second over all channels, and sweeps per second: one sweep per saved frame.
    points_per_second: int = 1_300_000
    rotation_frequency: float = 20.0
    #: metres, Gaussian noise along each ray.
    noise_stddev: float = 0.02
    #: fraction of rays dropped at random.
    dropoff_general_rate: float = 0.1
    #: intensity = exp(-rate * distance) (CARLA's model).
    atmosphere_attenuation_rate: float = 0.004

    @property
    def azimuth_steps(self) -> int:
        """Rays per channel in one sweep (~1016 for OPV2V, an azimuth step of ~0.354 deg)."""
        return int(round(self.points_per_second / self.rotation_frequency / self.channels))


#: CARLA's fixed simulation step (s) and the frame-number step between saved OPV2V frames (10 Hz).
SIM_DT = 0.05
FRAME_STEP = 2
MAX_AGENTS = 7
PCD_FORMATS = ("ascii", "binary")


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`coopmap.synth.generate` writes."""

    #: output root; scenes go to ``out/<split>/<scenario>/<cav_id>/``.
    out: str
    #: split folder name (OPV2V: train, validate, test, test_culvercity).
    split: str = "train"
    #: number of scenarios (folders named like ``2021_08_22_21_41_24``).
    scenarios: int = 1
    #: connected vehicles per scenario (OPV2V has 2 to 7; 1 is allowed for quick single-agent checks).
    agents: int = 3
    #: saved frames per scenario (timestamps step by 2).
    frames: int = 4
    #: master seed; the same seed writes byte-identical files.
    seed: int = 0
    #: (width, height) of every camera image; the intrinsics follow (100 deg horizontal FOV).
    image_size: tuple[int, int] = (800, 600)
    #: ``ascii`` (as OPV2V's files) or ``binary`` point clouds.
    pcd_format: str = "ascii"
    #: add the LiDAR's 0.02 m range noise; off gives exact surface points (tests).
    lidar_noise: bool = True
    #: show a progress bar (after one second) on stderr.
    progress: bool = True
    #: also write ``TTTTTT_depthK.png`` in HEAL's OPV2V-H encoding (8-bit, whole metres, 255 = sky).
    depth_png: bool = False

    def validate(self) -> SynthConfig:
        """Raise :class:`ConfigError` naming the first bad option; return self."""
        checks = [
            (isinstance(self.scenarios, int) and self.scenarios >= 1, "scenarios", "an integer >= 1"),
            (isinstance(self.agents, int) and 1 <= self.agents <= MAX_AGENTS, "agents", f"1..{MAX_AGENTS}"),
            (isinstance(self.frames, int) and self.frames >= 1, "frames", "an integer >= 1"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed", "an integer >= 0"),
            (self.pcd_format in PCD_FORMATS, "pcd_format", " or ".join(PCD_FORMATS)),
            (_valid_size(self.image_size), "image_size", "(width, height), each 16..4096"),
            (_valid_split(self.split), "split", "a plain folder name such as train"),
        ]
        for ok, key, want in checks:
            if not ok:
                raise ConfigError(f"synth.{key}: expected {want}, got {getattr(self, key)!r}")
        return self


def _valid_size(size) -> bool:
    return (
        isinstance(size, tuple | list)
        and len(size) == 2
        and all(isinstance(s, int) and 16 <= s <= 4096 for s in size)
    )


def _valid_split(split) -> bool:
    return isinstance(split, str) and bool(split) and os.sep not in split and split not in (".", "..")


def parse_image_size(text: str) -> tuple[int, int]:
    """``"800x600"`` -> (800, 600); raises :class:`ConfigError` otherwise."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"synth.image_size: expected WIDTHxHEIGHT such as 800x600, got {text!r}")
    return int(parts[0]), int(parts[1])
