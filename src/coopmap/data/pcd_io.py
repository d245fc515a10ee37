"""Point Cloud Data (``.pcd``) files: ``ascii``, ``binary`` and ``binary_compressed`` (spec section 5).

OPV2V writes ``FIELDS x y z rgb`` (Open3D, ascii) with the LiDAR intensity in the red byte of the packed ``rgb``
value: ``R = (bits >> 16) & 0xFF``, intensity = R / 255. Old writers type ``rgb`` as a float (``TYPE F``: its bits
are the packed integer), newer ones as ``U``; both are read. A plain ``intensity`` field is read as is.
``binary_compressed`` stores ``uint32 compressed size, uint32 size`` then an LZF stream of the fields one after
the other (column-major). LZF comes from the ``lzf`` module (PyPI ``python-lzf``) when installed, else from the
small decoder below (same output; tested against each other when both are present).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coopmap.data.ascii_floats import parse_floats
from coopmap.errors import DataError

try:  # optional C extension (PyPI: python-lzf)
    import lzf as _lzf  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _lzf = None

__all__ = ["PointCloud", "check_pcd", "read_pcd", "write_pcd", "lzf_decompress", "lzf_compress_literal"]

_NP_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8",
             ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4", ("I", 8): "<i8"}
_MAX_HEADER = 4096


@dataclass(frozen=True)
class PointCloud:
    """A LiDAR sweep as stored: ``points`` (N, 3) float32 metres in the sensor frame (x fwd, y right, z up,
    left-handed like CARLA), ``intensity`` (N,) float32 in [0, 1] or None when the file has neither field."""

    points: np.ndarray
    intensity: np.ndarray | None


@dataclass(frozen=True)
class _Header:
    fields: list[str]
    sizes: list[int]
    types: list[str]
    counts: list[int]
    points: int
    data: str
    offset: int  # byte offset of the data section


def _parse_header(path: Path, raw: bytes) -> _Header:
    entries: dict[str, list[str]] = {}
    offset = 0
    while "DATA" not in entries:
        nl = raw.find(b"\n", offset)
        if nl < 0 or offset > _MAX_HEADER:
            what = "truncated: the header ends without a DATA line" if raw[:1] in (b"#", b"V", b"F") else \
                "not a PCD file: no DATA line in the header"
            raise DataError(path, what)
        parts = raw[offset:nl].decode("ascii", "replace").split()
        offset = nl + 1
        if parts and not parts[0].startswith("#"):
            entries[parts[0].upper()] = parts[1:]
    for key in ("FIELDS", "SIZE", "TYPE"):
        if key not in entries:
            raise DataError(path, f"PCD header has no {key} line")
    fields = entries["FIELDS"]
    try:
        sizes = [int(s) for s in entries["SIZE"]]
        counts = [int(c) for c in entries.get("COUNT", ["1"] * len(fields))]
        width = int(entries.get("WIDTH", ["-1"])[0])
        height = int(entries.get("HEIGHT", ["1"])[0])
        points = int(entries.get("POINTS", [str(width * height)])[0])
    except ValueError as err:
        raise DataError(path, f"PCD header has a non-integer SIZE/COUNT/WIDTH/HEIGHT/POINTS ({err})") from None
    types = [t.upper() for t in entries["TYPE"]]
    if any(c < 1 for c in counts):
        raise DataError(path, f"PCD header: COUNT values must be >= 1, got {' '.join(map(str, counts))}")
    if not (len(sizes) == len(types) == len(counts) == len(fields)):
        raise DataError(path, f"PCD header: FIELDS/SIZE/TYPE/COUNT lengths differ ({len(fields)}, {len(sizes)}, "
                              f"{len(types)}, {len(counts)})")
    for t, s in zip(types, sizes):
        if (t, s) not in _NP_TYPES:
            raise DataError(path, f"PCD header: unsupported TYPE {t} with SIZE {s}")
    if points < 0:
        raise DataError(path, "PCD header has neither POINTS nor WIDTH")
    data = entries["DATA"][0].lower() if entries["DATA"] else ""
    if data not in ("ascii", "binary", "binary_compressed"):
        raise DataError(path, f"PCD DATA must be ascii, binary or binary_compressed, got {data!r}")
    missing = [f for f in ("x", "y", "z") if f not in fields]
    if missing:
        raise DataError(path, f"PCD has no field(s) {', '.join(missing)} (fields: {' '.join(fields)})")
    return _Header(fields, sizes, types, counts, points, data, offset)


def _columns(h: _Header) -> dict[str, tuple[int, str]]:
    """field -> (first column index in the flattened row, numpy dtype)."""
    out, col = {}, 0
    for f, s, t, c in zip(h.fields, h.sizes, h.types, h.counts):
        out[f] = (col, _NP_TYPES[(t, s)])
        col += c
    return out


def _read_ascii(path: Path, h: _Header, body: bytes, wanted: set[str]) -> dict[str, np.ndarray]:
    ncols = sum(h.counts)
    cols = {f: c for f, c in _columns(h).items() if f in wanted}
    keep = tuple(sorted(col for col, _ in cols.values()))
    try:
        values = parse_floats(body, (ncols, keep))
    except ValueError as err:
        raise DataError(path, f"ascii data: {err}") from None
    if values.size != h.points * len(keep):  # a short or long body: parse_floats returned every value
        what = "truncated" if values.size < h.points * ncols else "too many values"
        raise DataError(path, f"{what}: header says {h.points} points x {ncols} values, the data has {values.size}")
    table = values.reshape(h.points, len(keep))
    out = {}
    for f, (col, dt) in cols.items():
        v = table[:, keep.index(col)]
        if f == "rgb" and dt == "<f4":  # packed integer stored in a float's bits
            with np.errstate(over="ignore"):
                v = v.astype("<f4").view("<u4")
        out[f] = v
    return out


def _read_binary(path: Path, h: _Header, body: bytes) -> dict[str, np.ndarray]:
    dtype = np.dtype([(f"f{i}", _NP_TYPES[(t, s)], (c,)) for i, (s, t, c) in enumerate(zip(h.sizes, h.types,
                                                                                             h.counts))])
    need = h.points * dtype.itemsize
    if len(body) < need:
        raise DataError(path, f"truncated: binary data has {len(body)} bytes, header needs {need}")
    rec = np.frombuffer(body, dtype=dtype, count=h.points)
    return {f: rec[f"f{i}"][:, 0] for i, f in enumerate(h.fields)}


def _read_compressed(path: Path, h: _Header, body: bytes) -> dict[str, np.ndarray]:
    if len(body) < 8:
        raise DataError(path, "truncated: binary_compressed data has no size words")
    csize, usize = struct.unpack("<II", body[:8])
    if len(body) - 8 < csize:
        raise DataError(path, f"truncated: compressed block of {csize} bytes, {len(body) - 8} present")
    widths = [s * c for s, c in zip(h.sizes, h.counts)]
    if usize != h.points * sum(widths):
        raise DataError(path, f"binary_compressed: uncompressed size {usize} != {h.points} points x "
                              f"{sum(widths)} bytes")
    try:
        raw = lzf_decompress(body[8:8 + csize], usize)
    except ValueError as err:
        raise DataError(path, f"binary_compressed: corrupt LZF stream ({err})") from None
    out, off = {}, 0
    for f, s, t, c, w in zip(h.fields, h.sizes, h.types, h.counts, widths):
        col = np.frombuffer(raw, dtype=_NP_TYPES[(t, s)], count=h.points * c, offset=off).reshape(h.points, c)
        out[f] = col[:, 0]
        off += h.points * w
    return out


def read_pcd(path: str | os.PathLike[str], with_intensity: bool = True) -> PointCloud:
    """Read a ``.pcd`` (ascii / binary / binary_compressed) as written by Open3D or PCL.

    Args:
        path: the file.
        with_intensity: decode ``rgb`` / ``intensity`` (False skips it).
    Returns:
        PointCloud: non-finite points (NaN padding of organised clouds) are dropped.
    Raises:
        DataError: missing, truncated or malformed file, or one whose points are all non-finite (the message
        names the file and what is wrong).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(path, f"cannot read point cloud ({err.strerror or err})") from None
    h = _parse_header(path, raw)
    body = raw[h.offset:]
    wanted = {"x", "y", "z"} | ({"rgb", "intensity"} if with_intensity else set())
    if h.data == "ascii":
        cols = _read_ascii(path, h, body, wanted)
    else:
        cols = (_read_binary if h.data == "binary" else _read_compressed)(path, h, body)
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32 become inf (dropped below)
        pts = np.stack([np.asarray(cols[a], dtype=np.float32) for a in "xyz"], axis=1)
        intensity = _intensity(cols) if with_intensity else None
    finite = np.isfinite(pts).all(axis=1)
    if not finite.all():
        if not finite.any():
            raise DataError(path, f"no finite point: all {len(pts)} points have NaN or inf coordinates")
        pts = pts[finite]
        intensity = None if intensity is None else intensity[finite]
    if intensity is not None and not np.isfinite(intensity).all():
        bad = int(np.count_nonzero(~np.isfinite(intensity)))
        raise DataError(path, f"non-finite intensity at {bad} of {len(pts)} points")
    return PointCloud(pts, intensity)


def _intensity(cols: dict[str, np.ndarray]) -> np.ndarray | None:
    if "intensity" in cols:
        return np.asarray(cols["intensity"], dtype=np.float32)
    if "rgb" in cols:
        v = cols["rgb"]
        bits = v.view("<u4") if v.dtype == np.dtype("<f4") else np.asarray(v).astype(np.uint64).astype(np.uint32)
        return ((bits >> np.uint32(16)) & np.uint32(0xFF)).astype(np.float32) / 255.0
    return None


def write_pcd(path: str | os.PathLike[str], points, intensity=None, data: str = "ascii",
              intensity_field: str = "rgb") -> None:
    """Write points (N, 3) (and intensities (N,) in [0, 1]) as a ``.pcd`` readable by :func:`read_pcd`/Open3D.

    Args:
        data: ``ascii`` | ``binary`` | ``binary_compressed``.
        intensity_field: ``rgb`` (OPV2V: float-typed packed value, intensity in red) or ``intensity`` (float).
    """
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    n = pts.shape[0]
    cols: list[tuple[str, np.ndarray]] = [("x", pts[:, 0]), ("y", pts[:, 1]), ("z", pts[:, 2])]
    if intensity is not None:
        inten = np.asarray(intensity, dtype=np.float32).reshape(-1)
        if inten.shape[0] != n:
            raise ValueError(f"intensity has {inten.shape[0]} values for {n} points")
        if intensity_field == "rgb":
            red = np.clip(np.round(inten.astype(np.float64) * 255.0), 0, 255).astype(np.uint32)
            cols.append(("rgb", (red << np.uint32(16)).view("<f4")))
        elif intensity_field == "intensity":
            cols.append(("intensity", inten))
        else:
            raise ValueError(f"intensity_field must be rgb or intensity, got {intensity_field!r}")
    if data not in ("ascii", "binary", "binary_compressed"):
        raise ValueError(f"data must be ascii, binary or binary_compressed, got {data!r}")
    k = len(cols)
    header = (f"# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS {' '.join(c[0] for c in cols)}\n"
              f"SIZE {' '.join(['4'] * k)}\nTYPE {' '.join(['F'] * k)}\nCOUNT {' '.join(['1'] * k)}\n"
              f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n")
    table = np.stack([c[1].astype("<f4") for c in cols], axis=1) if n else np.zeros((0, k), "<f4")
    if data == "ascii":
        flat = table.astype(np.float64).ravel().tolist()
        body = ((" ".join(["%.9g"] * k) + "\n") * n % tuple(flat)).encode("ascii")
    elif data == "binary":
        body = table.tobytes()
    else:
        raw = np.ascontiguousarray(table.T).tobytes()  # column-major: each field's values together
        comp = _lzf.compress(raw) if (_lzf is not None and raw) else None
        comp = comp or lzf_compress_literal(raw)
        body = struct.pack("<II", len(comp), len(raw)) + comp
    Path(path).write_bytes(header.encode("ascii") + body)


def lzf_decompress(data: bytes, size: int) -> bytes:
    """Decompress an LZF block to exactly ``size`` bytes (raises ValueError if corrupt)."""
    if _lzf is not None:
        out = _lzf.decompress(data, size + 1) if size else b""
        if out is None or len(out) != size:
            raise ValueError(f"decompressed to {0 if out is None else len(out)} bytes, expected {size}")
        return out
    return _lzf_decompress_py(data, size)


def _lzf_decompress_py(data: bytes, size: int) -> bytes:
    """LZF format: a control byte c < 32 starts a literal run of c + 1 bytes; otherwise a back-reference of
    length (c >> 5) + 2 (7 = extended: add the next byte) at distance ((c & 31) << 8 | next byte) + 1."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        i += 1
        if c < 32:
            run = c + 1
            if i + run > n:
                raise ValueError("literal run past the end of the input")
            out += data[i:i + run]
            i += run
            continue
        length = c >> 5
        if length == 7:
            if i >= n:
                raise ValueError("truncated back-reference")
            length += data[i]
            i += 1
        if i >= n:
            raise ValueError("truncated back-reference")
        ref = len(out) - ((c & 31) << 8) - data[i] - 1
        i += 1
        if ref < 0:
            raise ValueError("back-reference before the start of the output")
        length += 2
        if ref + length <= len(out):
            out += out[ref:ref + length]
        else:  # overlapping copy: repeat byte by byte
            for k in range(length):
                out.append(out[ref + k])
    if len(out) != size:
        raise ValueError(f"decompressed to {len(out)} bytes, expected {size}")
    return bytes(out)


def lzf_compress_literal(raw: bytes) -> bytes:
    """A valid (uncompressed) LZF stream: literal runs of at most 32 bytes. For writing test files."""
    chunks = []
    for i in range(0, len(raw), 32):
        part = raw[i:i + 32]
        chunks.append(bytes([len(part) - 1]) + part)
    return b"".join(chunks)


#: bytes of an ascii body sampled to estimate its row length (cheap check).
_ASCII_SAMPLE = 65536


def check_pcd(path: str | os.PathLike[str]) -> int:
    """Cheap completeness check of a ``.pcd`` without parsing its data; returns the header's point count.

    Reads the header and the file size (plus, for ascii, the first 64 KB and the last line): binary data must hold
    ``POINTS x row size`` bytes, binary_compressed its compressed block; ascii data must end with a complete row
    and be at least 90 % of ``POINTS x`` the mean row length of its first rows. :func:`read_pcd` is the deep check.

    Raises:
        DataError: missing, unreadable, malformed header or truncated data (naming the file).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(_MAX_HEADER + _ASCII_SAMPLE)
            f.seek(max(0, size - 256))
            tail = f.read()
    except OSError as err:
        raise DataError(path, f"cannot read point cloud ({err.strerror or err})") from None
    h = _parse_header(path, head)
    body = size - h.offset
    if h.data == "binary":
        need = h.points * sum(s * c for s, c in zip(h.sizes, h.counts))
        if body < need:
            raise DataError(path, f"truncated: binary data has {body} bytes, header needs {need}")
    elif h.data == "binary_compressed":
        words = head[h.offset:h.offset + 8]
        if len(words) < 8:
            raise DataError(path, "truncated: binary_compressed data has no size words")
        csize = struct.unpack("<I", words[:4])[0]
        if body - 8 < csize:
            raise DataError(path, f"truncated: compressed block of {csize} bytes, {body - 8} present")
    elif h.points > 0:
        ncols = sum(h.counts)
        last = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].split()
        if body <= 0 or (not tail.endswith(b"\n") and len(last) != ncols):
            raise DataError(path, f"truncated: the last ascii row has {len(last)} of {ncols} values")
        sample = head[h.offset:]
        complete = sample[:sample.rfind(b"\n") + 1]
        rows = complete.count(b"\n")
        row_len = len(complete) / rows if rows else 0.0
        if body < 0.9 * h.points * row_len:
            raise DataError(path, f"truncated: {body} bytes of ascii data, about {h.points * row_len:.0f} expected "
                                  f"for {h.points} points")
    return h.points
