"""Round trips of every export format (our readers; Open3D where it can be imported)."""

import os
import sys

import numpy as np
import pytest

from coopmap.data.pcd_io import read_pcd
from coopmap.errors import DataError
from coopmap.filtering.export import (
    conf_to_intensity,
    export_cloud,
    read_kitti_bin,
    read_ply,
    rh_to_native,
    write_kitti_bin,
    write_ply,
)

O3D_SITE = "/tmp/o3d_site"  # an optional `pip install --target` copy of Open3D (not a project dependency)


@pytest.fixture
def cloud():
    rng = np.random.default_rng(0)
    pts = rng.uniform([-50, -50, -3], [50, 50, 4], (1000, 3)).astype(np.float32)
    conf = rng.uniform(1.0, 30.0, 1000).astype(np.float32)
    return pts, conf


def test_conf_to_intensity_and_native_frame():
    np.testing.assert_allclose(conf_to_intensity([1.0, 2.0, 10.0, 0.5]), [0.0, 0.5, 0.9, 0.0], atol=1e-7)
    pts = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(rh_to_native(pts), [[1.0, -2.0, 3.0]])
    np.testing.assert_array_equal(rh_to_native(rh_to_native(pts)), pts)


@pytest.mark.parametrize("frame", ["native", "rh"])
def test_every_format_reads_back_the_same_points(tmp_path, cloud, frame):
    pts, conf = cloud
    T = np.diag([1.0, 1.0, 1.0, 1.0])
    paths = export_cloud(tmp_path / "a" / "000068", pts, conf, ["kitti", "pcd", "ply", "npz"], frame=frame,
                         T_ego_from_egolidar=T)
    assert [p.name for p in paths] == ["000068.bin", "000068.pcd", "000068.ply", "000068.npz"]
    want = rh_to_native(pts) if frame == "native" else pts
    inten = conf_to_intensity(conf)
    p_bin, i_bin = read_kitti_bin(paths[0])
    np.testing.assert_array_equal(p_bin, want)
    np.testing.assert_array_equal(i_bin, inten)
    pcd = read_pcd(paths[1])
    np.testing.assert_array_equal(pcd.points, want)
    np.testing.assert_allclose(pcd.intensity, inten, atol=0.5 / 255 + 1e-7)  # red byte: 1/255 steps
    p_ply, i_ply = read_ply(paths[2])
    np.testing.assert_array_equal(p_ply, want)
    np.testing.assert_array_equal(i_ply, inten)
    with np.load(paths[3], allow_pickle=False) as d:
        np.testing.assert_array_equal(d["points_rh"], pts)
        np.testing.assert_array_equal(d["points_native"], rh_to_native(pts))
        np.testing.assert_array_equal(d["conf"], conf)
        np.testing.assert_array_equal(d["intensity"], inten)
        np.testing.assert_array_equal(d["T_ego_from_egolidar"], T)
    assert not [f for f in os.listdir(tmp_path / "a") if f.startswith(".")]  # no temporary file left


def test_zero_intensity_and_empty_clouds(tmp_path):
    paths = export_cloud(tmp_path / "e", np.zeros((0, 3)), np.zeros(0), ["kitti", "pcd", "ply", "npz"])
    assert len(read_kitti_bin(paths[0])[0]) == 0 and len(read_pcd(paths[1]).points) == 0
    assert len(read_ply(paths[2])[0]) == 0
    p = export_cloud(tmp_path / "z", np.ones((3, 3)), np.full(3, 9.0), ["kitti"], intensity="zero")[0]
    assert (read_kitti_bin(p)[1] == 0).all()


def test_kitti_bin_is_plain_float32_rows(tmp_path, cloud):
    pts, conf = cloud
    write_kitti_bin(tmp_path / "x.bin", pts, conf)
    raw = np.fromfile(tmp_path / "x.bin", dtype=np.float32).reshape(-1, 4)  # how detectors read it
    np.testing.assert_array_equal(raw[:, :3], pts)
    (tmp_path / "bad.bin").write_bytes(b"\0" * 20)
    with pytest.raises(DataError, match="multiple of 16"):
        read_kitti_bin(tmp_path / "bad.bin")


def test_ply_reader_accepts_ascii_big_endian_and_double(tmp_path):
    (tmp_path / "a.ply").write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty double x\nproperty double y\n"
                                    "property double z\nelement face 0\nproperty list uchar int vertex_indices\n"
                                    "end_header\n1 2 3\n-4.5 5 6\n")
    pts, inten = read_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(pts, [[1, 2, 3], [-4.5, 5, 6]])
    assert inten is None
    rec = np.array([(1.0, 2.0, 3.0, 0.25)], dtype=[("x", ">f8"), ("y", ">f8"), ("z", ">f8"), ("intensity", ">f4")])
    header = ("ply\nformat binary_big_endian 1.0\nelement vertex 1\nproperty double x\nproperty double y\n"
              "property double z\nproperty float intensity\nend_header\n")
    (tmp_path / "b.ply").write_bytes(header.encode() + rec.tobytes())
    pts, inten = read_ply(tmp_path / "b.ply")
    np.testing.assert_array_equal(pts, [[1, 2, 3]])
    np.testing.assert_array_equal(inten, [0.25])
    (tmp_path / "c.ply").write_bytes(header.encode())
    with pytest.raises(DataError, match="truncated"):
        read_ply(tmp_path / "c.ply")
    write_ply(tmp_path / "d.ply", [[1, 2, 3]], [0.5])
    assert (tmp_path / "d.ply").read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")


def _open3d():
    if os.path.isdir(O3D_SITE) and O3D_SITE not in sys.path:
        sys.path.append(O3D_SITE)  # after the venv, so nothing of the venv is shadowed
    try:
        import open3d
    except Exception as err:  # not installed, or a broken binary: the test is optional
        pytest.skip(f"Open3D not importable ({type(err).__name__})")
    return open3d


def test_open3d_reads_our_pcd_and_ply(tmp_path, cloud):
    o3d = _open3d()
    pts, conf = cloud
    paths = export_cloud(tmp_path / "f", pts, conf, ["pcd", "ply"])
    for path in paths:
        got = np.asarray(o3d.io.read_point_cloud(str(path)).points)
        np.testing.assert_array_equal(got, rh_to_native(pts).astype(np.float64))
    colors = np.asarray(o3d.io.read_point_cloud(str(paths[0])).colors)  # OpenCOOD: intensity = colors[:, 0]
    np.testing.assert_allclose(colors[:, 0], conf_to_intensity(conf), atol=0.5 / 255 + 1e-6)
