"""Writers for OPV2V's on-disk formats (spec sections 1, 3, 5) plus the dense depth ``.npy`` files.

- ``TTTTTT.yaml``: plain block YAML, keys sorted as PyYAML dumps them; floats written with ``repr`` (exact).
- ``TTTTTT.pcd``: what Open3D's ``write_point_cloud`` writes: header ``FIELDS x y z rgb``, ``SIZE 4 4 4 4``,
  ``TYPE F F F F``, ``VIEWPOINT 0 0 0 1 0 0 0``; ``ascii`` rows ``%.10g`` or little-endian ``binary`` rows; the
  ``rgb`` float holds the uint32 ``R << 16 | G << 8 | B`` with the intensity in R (``round(255 i)``), G = B = 0.
- ``TTTTTT_cameraK.png``: 8-bit RGB; ``TTTTTT_depthK.npy``: (H, W) float32 z-depth, 0 = sky; optionally
  ``TTTTTT_depthK.png`` in HEAL's OPV2V-H encoding (8-bit grey, whole metres, 255 = sky).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def write_yaml(path: str | os.PathLike[str], data: dict) -> None:
    """Dump ``data`` (plain Python types only) as block-style YAML."""
    text = yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=True)
    Path(path).write_text(text, encoding="utf-8")


def pack_intensity(intensity) -> np.ndarray:
    """(P,) intensity in [0, 1] -> (P,) float32 ``rgb`` values with the intensity byte in red."""
    red = np.clip(np.round(np.asarray(intensity, dtype=np.float64) * 255.0), 0, 255).astype(np.uint32)
    return (red << np.uint32(16)).astype("<u4").view("<f4")


def unpack_intensity(rgb) -> np.ndarray:
    """Inverse of :func:`pack_intensity`: (P,) float32 ``rgb`` -> (P,) intensity R / 255."""
    bits = np.asarray(rgb, dtype="<f4").view("<u4")
    return ((bits >> np.uint32(16)) & np.uint32(0xFF)).astype(np.float32) / 255.0


def pcd_header(n_points: int, data: str) -> str:
    return (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\n"
        f"TYPE F F F F\nCOUNT 1 1 1 1\nWIDTH {n_points}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {n_points}\nDATA {data}\n"
    )


def write_pcd(path: str | os.PathLike[str], points, intensity, fmt: str = "ascii") -> None:
    """Write (P, 3) LiDAR-frame points and (P,) intensities as Open3D does (``ascii`` or ``binary``)."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    rows = np.empty((pts.shape[0], 4), dtype="<f4")
    rows[:, :3] = pts
    rows[:, 3] = pack_intensity(intensity)
    with open(path, "wb") as f:
        f.write(pcd_header(pts.shape[0], fmt).encode("ascii"))
        if fmt == "ascii":
            flat = tuple(rows.astype(np.float64).ravel().tolist())
            f.write((("%.10g %.10g %.10g %.10g\n" * pts.shape[0]) % flat).encode("ascii"))
        elif fmt == "binary":
            f.write(rows.tobytes())
        else:
            raise ValueError(f"pcd format must be ascii or binary, got {fmt!r}")


def write_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """(H, W, 3) uint8 RGB -> PNG (deterministic: fixed compression level, no metadata)."""
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, format="PNG", compress_level=1)


def write_depth_png(path: str | os.PathLike[str], depth: np.ndarray) -> None:
    """(H, W) z-depth in metres (0 = sky) -> HEAL's OPV2V-H depth PNG: 8-bit grey, whole metres, 255 = sky or
    >= 254.5 m (:func:`coopmap.data.dense_depth.metres_to_depth_png`)."""
    from coopmap.data.dense_depth import metres_to_depth_png

    Image.fromarray(metres_to_depth_png(depth)).save(path, format="PNG", compress_level=1)  # uint8 (H, W): "L"


def write_depth(path: str | os.PathLike[str], depth: np.ndarray) -> None:
    """(H, W) z-depth in metres -> float32 ``.npy`` (0 = sky)."""
    np.save(path, np.asarray(depth, dtype=np.float32), allow_pickle=False)


def data_protocol(spec, image_size, seed: int, scenario_seed: int, n_frames: int) -> dict:
    """The scenario's ``data_protocol.yaml`` (OpenCDA-style keys) plus a ``synthetic`` block."""
    from coopmap.synth.config import CAMERA_FOV_DEG, CAMERA_MOUNTS, FRAME_STEP, LIDAR_MOUNT, SIM_DT

    lidar = {k: getattr(spec, k) for k in (
        "channels", "range", "points_per_second", "rotation_frequency", "upper_fov", "lower_fov",
        "dropoff_general_rate", "noise_stddev", "atmosphere_attenuation_rate")}
    lidar.update(dropoff_intensity_limit=1.0, dropoff_zero_intensity=0.0, visualize=False)
    cameras = {"num": 4, "visualize": 0, "fov": CAMERA_FOV_DEG, "image_size_x": image_size[0],
               "image_size_y": image_size[1],
               "positions": [[m[0], m[1], m[2], m[4]] for m in CAMERA_MOUNTS]}
    return {
        "description": "synthetic OPV2V-format scenario written by coopmap synth",
        "world": {"sync_mode": True, "fixed_delta_seconds": SIM_DT, "seed": scenario_seed},
        "vehicle_base": {"sensing": {"perception": {
            "activate": True, "camera": cameras, "lidar": lidar,
            "lidar_position": list(LIDAR_MOUNT[:3])}}},
        "synthetic": {"generator": "coopmap synth", "seed": seed, "frames": n_frames, "frame_step": FRAME_STEP,
                      "dense_depth": "TTTTTT_depthK.npy: float32 z-depth in metres, 0 = sky"},
    }
