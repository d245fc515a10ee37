"""PCD reading/writing: round trips, Open3D-written files, LZF, and malformed files."""

from pathlib import Path

import numpy as np
import pytest

from coopmap.data import pcd_io
from coopmap.data.pcd_io import lzf_compress_literal, lzf_decompress, read_pcd, write_pcd
from coopmap.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"


def _cloud(n=500, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-80, 80, (n, 3)).astype(np.float32)
    inten = rng.integers(0, 256, n) / 255.0
    return pts, inten


@pytest.mark.parametrize("data", ["ascii", "binary", "binary_compressed"])
@pytest.mark.parametrize("field", ["rgb", "intensity"])
def test_write_read_round_trip(tmp_path, data, field):
    pts, inten = _cloud()
    path = tmp_path / "c.pcd"
    write_pcd(path, pts, inten, data=data, intensity_field=field)
    pc = read_pcd(path)
    np.testing.assert_array_equal(pc.points, pts)
    np.testing.assert_allclose(pc.intensity, inten, atol=1e-6)
    assert read_pcd(path, with_intensity=False).intensity is None


@pytest.mark.parametrize("name", ["open3d_ascii", "open3d_binary", "open3d_binary_compressed"])
def test_reads_files_written_by_open3d(name):
    """Written by Open3D 0.20 (write_point_cloud, colours = intensity grey): rgb typed U, LZF-compressed."""
    rng = np.random.default_rng(7)
    pts = rng.uniform(-50, 50, (40, 3)).astype(np.float32)
    inten = rng.integers(0, 256, 40) / 255.0
    pc = read_pcd(FIXTURES / f"{name}.pcd")
    np.testing.assert_allclose(pc.points, pts, atol=1e-5)
    np.testing.assert_allclose(pc.intensity, inten, atol=1.01 / 255)


def test_opv2v_style_float_rgb_ascii(tmp_path):
    """OPV2V / synth: TYPE F rgb printed with %.10g (subnormal floats); R byte = round(255 * intensity)."""
    red = np.array([0, 1, 77, 128, 255], dtype=np.uint32)
    rgb = (red << 16).view(np.float32)
    rows = "".join(f"{i}.5 -{i}.25 {i} %.10g\n" % v for i, v in enumerate(rgb.astype(np.float64)))
    head = ("VERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\nWIDTH 5\nHEIGHT 1\n"
            "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 5\nDATA ascii\n")
    (tmp_path / "o.pcd").write_text(head + rows)
    pc = read_pcd(tmp_path / "o.pcd")
    np.testing.assert_array_equal(pc.intensity * 255, red.astype(np.float32))
    np.testing.assert_array_equal(pc.points[2], [2.5, -2.25, 2])


def test_nan_points_are_dropped(tmp_path):
    pts, inten = _cloud(10)
    pts[3] = np.nan
    write_pcd(tmp_path / "n.pcd", pts, inten, data="binary")
    pc = read_pcd(tmp_path / "n.pcd")
    assert pc.points.shape == (9, 3) and pc.intensity.shape == (9,)


def test_lzf_back_references_and_literals():
    # literal "abc", then a 9-byte overlapping back-reference at distance 3 (extended length)
    assert pcd_io._lzf_decompress_py(b"\x02abc\xe0\x00\x02", 12) == b"abcabcabcabc"
    # short back-reference: length (1 << 5 -> 1) + 2 = 3 at distance 3
    assert pcd_io._lzf_decompress_py(b"\x02xyz\x20\x02", 6) == b"xyzxyz"
    raw = bytes(range(256)) * 3
    assert pcd_io._lzf_decompress_py(lzf_compress_literal(raw), len(raw)) == raw
    assert lzf_decompress(lzf_compress_literal(raw), len(raw)) == raw


@pytest.mark.parametrize("stream", [b"\x05ab", b"\x02abc\xe0", b"\x02abc\x20\x09"])
def test_lzf_corrupt_streams_raise(stream):
    with pytest.raises(ValueError):
        pcd_io._lzf_decompress_py(stream, 12)


def _damaged(tmp_path, data, cut):
    pts, inten = _cloud(300)
    path = tmp_path / f"{data}.pcd"
    write_pcd(path, pts, inten, data=data)
    raw = path.read_bytes()
    path.write_bytes(raw[:cut(len(raw))])
    return path


@pytest.mark.parametrize("data", ["ascii", "binary", "binary_compressed"])
def test_truncated_file_is_reported(tmp_path, data):
    path = _damaged(tmp_path, data, lambda n: n // 2)
    with pytest.raises(DataError, match="truncated") as err:
        read_pcd(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text, reason", [
    ("", "not a PCD"),
    ("VERSION 0.7\nFIELDS x y z\n", "truncated"),
    ("FIELDS x y\nSIZE 4 4\nTYPE F F\nCOUNT 1 1\nPOINTS 1\nDATA ascii\n1 2\n", "no field"),
    ("FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nPOINTS 1\nDATA zip\n", "DATA must be"),
    ("FIELDS x y z\nSIZE 4 4\nTYPE F F F\nCOUNT 1 1 1\nPOINTS 1\nDATA ascii\n1 2 3\n", "lengths differ"),
    ("FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nPOINTS 2\nDATA ascii\n1 2 3\n4 5 x\n", "not a number"),
    ("FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nPOINTS 1\nDATA ascii\n1 2 3 4\n", "too many"),
    ("FIELDS x y z\nSIZE 4 4 4\nTYPE F F Q\nCOUNT 1 1 1\nPOINTS 1\nDATA ascii\n1 2 3\n", "unsupported TYPE"),
])
def test_malformed_headers_and_bodies(tmp_path, text, reason):
    path = tmp_path / "bad.pcd"
    path.write_text(text)
    with pytest.raises(DataError, match=reason):
        read_pcd(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_pcd(tmp_path / "nope.pcd")


def test_corrupt_compressed_block(tmp_path):
    pts, inten = _cloud(50)
    path = tmp_path / "c.pcd"
    write_pcd(path, pts, inten, data="binary_compressed")
    raw = bytearray(path.read_bytes())
    body = raw.index(b"DATA binary_compressed\n") + len(b"DATA binary_compressed\n")
    raw[body + 8] = 0xFF  # a back-reference to before the start of the output
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt LZF|binary_compressed"):
        read_pcd(path)


def test_truncated_ascii_is_reported_when_reading_xyz_only(tmp_path):
    path = _damaged(tmp_path, "ascii", lambda n: n - 200)
    with pytest.raises(DataError, match="truncated"):
        read_pcd(path, with_intensity=False)
