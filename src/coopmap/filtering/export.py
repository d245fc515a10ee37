"""Writing filtered clouds for LiDAR detectors, and reading them back.

Formats (docs/filtering.md):
- ``kitti``: ``.bin``, N x 4 little-endian float32 rows (x, y, z, intensity), no header (KITTI velodyne layout,
  read by OpenPCDet / OpenCOOD-style loaders with ``np.fromfile(f, np.float32).reshape(-1, 4)``);
- ``pcd``: binary ``.pcd`` through :func:`coopmap.data.pcd_io.write_pcd`, ``FIELDS x y z rgb`` with the intensity
  in the red byte of the packed ``rgb`` (OPV2V's own convention, which OpenCOOD decodes; 1/255 steps);
- ``ply``: binary little-endian ``.ply``, one ``vertex`` element with float properties x, y, z, intensity;
- ``npz``: ``points_rh`` and ``points_native`` (N, 3) float32, ``intensity`` and ``conf`` (N,) float32, and the
  frame's ``T_ego_from_egolidar`` / ``T_world_from_egolidar`` (4, 4) when known.

``bin`` / ``pcd`` / ``ply`` hold the points in the chosen frame: ``native`` = OPV2V's LiDAR frame (left-handed: x
forward, **y right**, z up, as the dataset's .pcd files and OpenCOOD) or ``rh`` = ours (y left). Every file is
written to a temporary ``.<name>.<random>.tmp`` beside it and renamed, so a killed run never leaves a truncated
cloud under a cloud's name (``run_filter`` deletes stale temporaries when it starts).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from coopmap.data.pcd_io import write_pcd
from coopmap.errors import DataError
from coopmap.evaluation.outputs import TMP_SUFFIX
from coopmap.geometry import points_lh_to_rh

EXTENSIONS = {"kitti": ".bin", "pcd": ".pcd", "ply": ".ply", "npz": ".npz"}

_PLY_TYPES = {"char": "i1", "uchar": "u1", "short": "i2", "ushort": "u2", "int": "i4", "uint": "u4", "float": "f4",
              "double": "f8", "int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4",
              "uint32": "u4", "float32": "f4", "float64": "f8"}


def conf_to_intensity(conf) -> np.ndarray:
    """MapAnything confidence (>= 1) -> intensity ``1 - 1/conf`` in [0, 1) (conf 1 -> 0, conf 10 -> 0.9).
    Values below 1 (not produced by MapAnything) map to 0. (N,) -> (N,) float32."""
    c = np.maximum(np.asarray(conf, dtype=np.float64), 1.0)
    return (1.0 - 1.0 / c).astype(np.float32)


def rh_to_native(pts_rh) -> np.ndarray:
    """Our right-handed LiDAR frame (y left) -> OPV2V's left-handed one (y right); its own inverse. (N, 3)."""
    return points_lh_to_rh(np.asarray(pts_rh, dtype=np.float32))


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _table(points, intensity) -> np.ndarray:
    pts = np.asarray(points, dtype="<f4").reshape(-1, 3)
    inten = np.asarray(intensity, dtype="<f4").reshape(-1)
    if len(inten) != len(pts):
        raise ValueError(f"intensity has {len(inten)} values for {len(pts)} points")
    return np.ascontiguousarray(np.column_stack([pts, inten]), dtype="<f4")


def write_kitti_bin(path, points, intensity) -> None:
    """(N, 3) points and (N,) intensities -> KITTI ``.bin`` (N x 4 float32, no header)."""
    table = _table(points, intensity)
    _atomic(Path(path), lambda p: p.write_bytes(table.tobytes()))


def read_kitti_bin(path) -> tuple[np.ndarray, np.ndarray]:
    """KITTI ``.bin`` -> points (N, 3) float32, intensity (N,) float32. Raises DataError if the size is not a
    multiple of 16 bytes."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) % 16:
        raise DataError(path, f"KITTI .bin size {len(raw)} is not a multiple of 16 bytes (x, y, z, i float32)")
    table = np.frombuffer(raw, dtype="<f4").reshape(-1, 4)
    return table[:, :3].copy(), table[:, 3].copy()


def write_ply(path, points, intensity) -> None:
    """(N, 3) points and (N,) intensities -> binary little-endian ``.ply`` (vertex: x, y, z, intensity float)."""
    table = _table(points, intensity)
    header = ("ply\nformat binary_little_endian 1.0\ncomment coopmap filter\n"
              f"element vertex {len(table)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property float intensity\nend_header\n")
    _atomic(Path(path), lambda p: p.write_bytes(header.encode("ascii") + table.tobytes()))


def _ply_header(path: Path, raw: bytes) -> tuple[str, int, list[tuple[str, str]], int]:
    """(format, vertex count, [(property, numpy type)], data offset) of a ply whose first element is vertex."""
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise DataError(path, "not a PLY file (no 'ply' magic or no end_header)")
    offset = raw.index(b"\n", end) + 1
    fmt, count, props, element = "", -1, [], None
    for line in raw[:end].decode("ascii", "replace").splitlines()[1:]:
        parts = line.split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        if parts[0] == "format":
            fmt = parts[1]
        elif parts[0] == "element":
            if element == "vertex":
                break  # later elements (faces) are not read
            element, count = parts[1], int(parts[2])
            if element != "vertex":
                raise DataError(path, f"PLY: the first element is {element!r}, expected 'vertex'")
        elif parts[0] == "property" and element == "vertex":
            if parts[1] == "list" or parts[1] not in _PLY_TYPES:
                raise DataError(path, f"PLY: unsupported vertex property {' '.join(parts[1:])}")
            props.append((parts[2], _PLY_TYPES[parts[1]]))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian") or count < 0:
        raise DataError(path, f"PLY: unsupported format {fmt!r} or no vertex element")
    return fmt, count, props, offset


def read_ply(path) -> tuple[np.ndarray, np.ndarray | None]:
    """A ``.ply`` (ascii or binary, vertex element first) -> points (N, 3) float32 and intensity (N,) float32 or
    None when the vertices have no ``intensity`` property."""
    path = Path(path)
    raw = path.read_bytes()
    fmt, count, props, offset = _ply_header(path, raw)
    names = [n for n, _ in props]
    if not {"x", "y", "z"} <= set(names):
        raise DataError(path, f"PLY vertices have no x, y, z properties (have {' '.join(names)})")
    if fmt == "ascii":
        table = np.loadtxt(raw[offset:].decode("ascii").splitlines()[:count], dtype=np.float64, ndmin=2)
        cols = {n: table[:, i] for i, n in enumerate(names)} if count else {n: np.zeros(0) for n in names}
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(n, order + t) for n, t in props])
        if len(raw) - offset < count * dtype.itemsize:
            raise DataError(path, f"truncated: {count} vertices need {count * dtype.itemsize} bytes")
        rec = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
        cols = {n: rec[n] for n in names}
    pts = np.stack([np.asarray(cols[a], dtype=np.float32) for a in "xyz"], axis=1)
    inten = np.asarray(cols["intensity"], dtype=np.float32) if "intensity" in cols else None
    return pts, inten


def write_npz(path, points_rh, intensity, conf, **transforms) -> None:
    """Both frames and the attributes in one ``.npz`` (keys in the module docstring; loads with
    ``allow_pickle=False``)."""
    arrays = {"points_rh": np.asarray(points_rh, dtype=np.float32).reshape(-1, 3),
              "points_native": rh_to_native(points_rh).reshape(-1, 3),
              "intensity": np.asarray(intensity, dtype=np.float32).reshape(-1),
              "conf": np.asarray(conf, dtype=np.float32).reshape(-1),
              **{k: np.asarray(v, dtype=np.float64) for k, v in transforms.items()}}

    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez(f, **arrays)

    _atomic(Path(path), write)


def export_cloud(stem, points_rh, conf, formats, frame: str = "native", intensity: str = "conf",
                 **transforms) -> list[Path]:
    """Write one filtered cloud in each format; returns the paths written (``stem`` + each extension).

    Args:
        stem: path without extension; points_rh: (N, 3) ego LiDAR frame, right-handed; conf: (N,) confidences;
        formats: subset of kitti, pcd, ply, npz; frame: native | rh (for kitti / pcd / ply); intensity: conf
            (``1 - 1/conf``) | zero; transforms: (4, 4) arrays stored in the npz.
    """
    pts = np.asarray(points_rh, dtype=np.float32).reshape(-1, 3)
    inten = conf_to_intensity(conf) if intensity == "conf" else np.zeros(len(pts), dtype=np.float32)
    out_pts = rh_to_native(pts) if frame == "native" else pts
    paths = []
    for fmt in formats:
        path = Path(f"{stem}{EXTENSIONS[fmt]}")
        if fmt == "kitti":
            write_kitti_bin(path, out_pts, inten)
        elif fmt == "ply":
            write_ply(path, out_pts, inten)
        elif fmt == "pcd":
            _atomic(path, lambda p, q=out_pts: write_pcd(p, q, inten, data="binary", intensity_field="rgb"))
        else:
            write_npz(path, pts, inten, conf, **transforms)
        paths.append(path)
    return paths
