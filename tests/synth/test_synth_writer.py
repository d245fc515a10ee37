"""OPV2V file formats as written: .pcd (Open3D's layout, intensity in the red byte), yaml floats, png, npy."""

import numpy as np
import pytest
from opv2v_files import intensity_of, read_pcd, read_yaml
from PIL import Image

from coopmap.synth.writer import (
    pack_intensity,
    unpack_intensity,
    write_depth,
    write_pcd,
    write_png,
    write_yaml,
)

OPEN3D_HEADER = [
    "# .PCD v0.7 - Point Cloud Data file format", "VERSION 0.7", "FIELDS x y z rgb", "SIZE 4 4 4 4",
    "TYPE F F F F", "COUNT 1 1 1 1", "WIDTH 3", "HEIGHT 1", "VIEWPOINT 0 0 0 1 0 0 0", "POINTS 3",
]


def test_intensity_is_packed_in_the_red_byte():
    bits = pack_intensity([0.0, 1.0, 0.5, 100 / 255]).view("<u4")
    np.testing.assert_array_equal(bits, [0, 0xFF0000, 128 << 16, 100 << 16])
    np.testing.assert_allclose(unpack_intensity(pack_intensity([0.2, 0.9])), [51 / 255, 230 / 255], atol=1e-7)


@pytest.mark.parametrize("fmt", ["ascii", "binary"])
def test_pcd_round_trip_and_open3d_header(tmp_path, fmt):
    pts = np.array([[1.5, -2.25, 0.125], [100.123456, -0.000123, -1.9], [3e-3, 7.0, 2.0]], dtype=np.float32)
    inten = np.array([0.9, 0.1, 0.0])
    path = tmp_path / f"x_{fmt}.pcd"
    write_pcd(path, pts, inten, fmt)
    lines = path.read_bytes().split(b"\n")
    assert [ln.decode() for ln in lines[:10]] == OPEN3D_HEADER
    assert lines[10].decode() == f"DATA {fmt}"
    header, rows = read_pcd(path)
    np.testing.assert_array_equal(rows[:, :3], pts)  # float32 exact (ascii uses %.10g)
    np.testing.assert_allclose(intensity_of(rows[:, 3]), np.round(inten * 255) / 255, atol=1e-7)
    if fmt == "ascii":
        assert lines[11].decode().split()[:3] == [f"{float(v):.10g}" for v in pts[0]]
    else:
        assert len(path.read_bytes()) == sum(len(ln) + 1 for ln in lines[:11]) + 3 * 16


def test_yaml_floats_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    data = {"cords": rng.normal(size=6).tolist(), "vehicles": {1234: {"speed": 1 / 3}}}
    write_yaml(tmp_path / "a.yaml", data)
    back = read_yaml(tmp_path / "a.yaml")
    assert back == data  # exact equality, int keys stay ints


def test_png_and_depth_files(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    write_png(tmp_path / "c.png", rgb)
    img = Image.open(tmp_path / "c.png")
    assert img.mode == "RGB" and img.size == (8, 6)
    np.testing.assert_array_equal(np.asarray(img), rgb)
    depth = np.linspace(0, 50, 48).reshape(6, 8)
    write_depth(tmp_path / "d.npy", depth)
    back = np.load(tmp_path / "d.npy")
    assert back.dtype == np.float32 and back.shape == (6, 8)
    np.testing.assert_allclose(back, depth, rtol=1e-7)
