"""A tiny independent reader of the files ``coopmap synth`` writes, for the tests only.

Deliberately separate from ``coopmap.data`` so that the generator is checked against the format itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)


def read_pcd(path) -> tuple[dict[str, str], np.ndarray]:
    """(header dict, (N, 4) float32 rows x y z rgb) of an ascii or binary .pcd with FIELDS x y z rgb."""
    raw = Path(path).read_bytes()
    header: dict[str, str] = {}
    offset = 0
    while "DATA" not in header:
        end = raw.index(b"\n", offset)
        line = raw[offset:end].decode("ascii")
        offset = end + 1
        if line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        header[key] = value
    n = int(header["POINTS"])
    body = raw[offset:]
    if header["DATA"] == "ascii":
        rows = np.array(body.split(), dtype=np.float64).reshape(n, 4).astype(np.float32)
    else:
        rows = np.frombuffer(body, dtype="<f4", count=4 * n).reshape(n, 4)
    return header, rows


def intensity_of(rgb) -> np.ndarray:
    """Intensity R / 255 from the packed ``rgb`` float column (R in bits 16..23)."""
    bits = np.asarray(rgb, dtype="<f4").view("<u4")
    return ((bits >> 16) & 0xFF).astype(np.float32) / 255.0


def agent_frames(split_dir) -> list[tuple[Path, str]]:
    """Every (agent folder, timestamp) under a split folder, sorted."""
    out = []
    for yml in sorted(Path(split_dir).glob("*/*/*.yaml")):
        out.append((yml.parent, yml.stem))
    return out
