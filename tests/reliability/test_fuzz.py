"""Property-based fuzzing of the readers and the geometry entry points.

The property: any input either gives finite values or raises one of our own errors (``CoopmapError``: a
``DataError`` naming the file for the readers, ``ShapeError`` / ``InvalidValueError`` for geometry); never
another exception, never a NaN or inf that would flow on silently.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coopmap.data.pcd_io import PointCloud, lzf_compress_literal, read_pcd, write_pcd
from coopmap.data.yaml_io import load_yaml, read_agent_yaml, read_lidar_pose
from coopmap.errors import CoopmapError, DataError, InvalidValueError
from coopmap.geometry import camera_pose_rh, carla_to_matrix, project, sensor_pose_rh, unproject, x1_to_x2

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "input"


def _finite_cloud(pc: PointCloud) -> None:
    assert pc.points.dtype == np.float32 and pc.points.ndim == 2 and pc.points.shape[1] == 3
    assert np.isfinite(pc.points).all()
    if pc.intensity is not None:
        assert pc.intensity.shape == (len(pc.points),) and np.isfinite(pc.intensity).all()


def _read_pcd_or_data_error(path) -> PointCloud | None:
    try:
        pc = read_pcd(path)
    except DataError as err:
        assert err.path == str(path) and err.reason
        return None
    _finite_cloud(pc)
    _finite_cloud(read_pcd(path, with_intensity=False))
    return pc


# --- .pcd ---------------------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.binary(max_size=3000))
def test_pcd_random_bytes(scratch, data):
    scratch.write_bytes(data)
    _read_pcd_or_data_error(scratch)


_VALID_TYPES = [("F", 4), ("F", 8), ("U", 1), ("U", 2), ("U", 4), ("U", 8), ("I", 1), ("I", 2), ("I", 4), ("I", 8)]
_TYPE_SIZE = st.one_of(st.sampled_from(_VALID_TYPES),
                       st.tuples(st.sampled_from(["F", "U", "X", "f"]), st.sampled_from([0, 3, 2, -4, 16])))


@st.composite
def _pcd_headers(draw) -> bytes:
    """Headers of every shape: mostly consistent, or not; any sizes, types, counts, point counts, DATA keywords."""
    names = draw(st.lists(st.sampled_from(["x", "y", "z", "rgb", "intensity", "normal_x"]), max_size=5))
    if draw(st.booleans()):
        names = ["x", "y", "z"] + names[3:]
    n = len(names)
    pairs = draw(st.lists(_TYPE_SIZE, min_size=n, max_size=n))
    lines = [f"FIELDS {' '.join(names)}",
             f"SIZE {' '.join(str(s) for _, s in pairs)}" + draw(st.sampled_from(["", "", "", " 4"])),
             f"TYPE {' '.join(t for t, _ in pairs)}"]
    if draw(st.booleans()):
        counts = draw(st.lists(st.sampled_from([1, 1, 1, 2, 0, -1]), min_size=n, max_size=n))
        lines.append(f"COUNT {' '.join(map(str, counts))}")
    points = draw(st.integers(-2, 40))
    lines += [f"WIDTH {points}", "HEIGHT 1"]
    if draw(st.booleans()):
        lines.append(f"POINTS {draw(st.sampled_from([points, points + 1, 10**12, -1, 'many']))}")
    lines.append(f"DATA {draw(st.sampled_from(['ascii', 'binary', 'binary_compressed', 'BINARY', 'lzf', '']))}")
    if draw(st.integers(0, 4)) == 0:
        lines = draw(st.permutations(lines))
    return ("\n".join(lines) + "\n").encode()


@FUZZ
@given(header=_pcd_headers(), body=st.one_of(st.binary(max_size=800),
                                             st.lists(st.floats(width=32), max_size=120).map(
                                                 lambda v: " ".join(map(str, v)).encode()),
                                             st.lists(st.floats(width=32), max_size=120).map(
                                                 lambda v: struct.pack(f"<{len(v)}f", *v))))
def test_pcd_random_headers_and_bodies(scratch, header, body):
    scratch.write_bytes(header + body)
    _read_pcd_or_data_error(scratch)


@FUZZ
@given(st.data())
def test_pcd_consistent_headers_with_random_data_of_the_right_length(scratch, data):
    """Headers that pass the length checks, so the decoding of random values themselves is exercised."""
    names = ["x", "y", "z"] + data.draw(st.lists(st.sampled_from(["rgb", "intensity", "t"]), max_size=2,
                                                 unique=True))
    pairs = data.draw(st.lists(st.sampled_from(_VALID_TYPES), min_size=len(names), max_size=len(names)))
    counts = data.draw(st.lists(st.sampled_from([1, 1, 1, 2, 0]), min_size=len(names), max_size=len(names)))
    n = data.draw(st.integers(0, 30))
    encoding = data.draw(st.sampled_from(["ascii", "binary", "binary_compressed"]))
    header = (f"FIELDS {' '.join(names)}\nSIZE {' '.join(str(s) for _, s in pairs)}\n"
              f"TYPE {' '.join(t for t, _ in pairs)}\nCOUNT {' '.join(map(str, counts))}\nWIDTH {n}\nHEIGHT 1\n"
              f"POINTS {n}\nDATA {encoding}\n").encode()
    row = sum(s * max(c, 0) for (_, s), c in zip(pairs, counts))
    if encoding == "ascii":
        values = data.draw(st.lists(st.floats(), min_size=n * sum(max(c, 0) for c in counts),
                                    max_size=n * sum(max(c, 0) for c in counts)))
        body = " ".join(map(repr, values)).encode()
    else:
        raw = data.draw(st.binary(min_size=n * row, max_size=n * row))
        comp = lzf_compress_literal(raw)
        body = raw if encoding == "binary" else struct.pack("<II", len(comp), len(raw)) + comp
    scratch.write_bytes(header + body)
    _read_pcd_or_data_error(scratch)


@pytest.mark.parametrize("encoding", ["ascii", "binary", "binary_compressed"])
@pytest.mark.parametrize("counts", ["1 1 0", "1 1 -1"])
def test_pcd_count_below_one_is_a_data_error(scratch, encoding, counts):
    scratch.write_bytes(f"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT {counts}\nWIDTH 2\nPOINTS 2\n"
                        f"DATA {encoding}\n".encode() + struct.pack("<8f", *range(8)))
    with pytest.raises(DataError, match="COUNT values must be >= 1"):
        read_pcd(scratch)


@pytest.mark.parametrize("encoding", ["ascii", "binary", "binary_compressed"])
def test_pcd_non_finite_intensity_of_a_finite_point_is_a_data_error(scratch, encoding):
    write_pcd(scratch, np.zeros((3, 3)), np.array([math.nan, 1.0, math.inf]), data=encoding,
              intensity_field="intensity")
    with pytest.raises(DataError, match="non-finite intensity at 2 of 3 points"):
        read_pcd(scratch)
    assert read_pcd(scratch, with_intensity=False).points.shape == (3, 3)


@st.composite
def _valid_pcd(draw) -> tuple[bytes, np.ndarray]:
    n = draw(st.integers(0, 40))
    pts = np.asarray(draw(st.lists(st.floats(-200, 200, width=32), min_size=3 * n, max_size=3 * n)),
                     dtype=np.float32).reshape(n, 3)
    inten = np.asarray(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    return pts, inten


@FUZZ
@given(cloud=_valid_pcd(), data=st.sampled_from(["ascii", "binary", "binary_compressed"]),
       field=st.sampled_from(["rgb", "intensity"]), damage=st.sampled_from(["none", "truncate", "flip", "both"]),
       where=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=6),
       bits=st.lists(st.integers(0, 7), min_size=6, max_size=6))
def test_pcd_valid_files_damaged_by_truncation_and_bit_flips(scratch, cloud, data, field, damage, where, bits):
    pts, inten = cloud
    write_pcd(scratch, pts, inten, data=data, intensity_field=field)
    raw = bytearray(scratch.read_bytes())
    if damage == "none":
        np.testing.assert_array_equal(read_pcd(scratch).points, pts)
        return
    if damage in ("flip", "both"):
        for w, b in zip(where, bits):
            raw[int(w * len(raw))] ^= 1 << b
    if damage in ("truncate", "both"):
        raw = raw[: int(where[0] * len(raw))]
    scratch.write_bytes(bytes(raw))
    _read_pcd_or_data_error(scratch)


# --- YAML ---------------------------------------------------------------------------------------------------------

def _read_yaml_or_data_error(path) -> None:
    for read in (lambda p: read_agent_yaml(p), read_lidar_pose, load_yaml, lambda p: load_yaml(p, keys=["a"])):
        try:
            out = read(path)
        except DataError as err:
            assert err.path == str(path) and err.reason
            continue
        if isinstance(out, np.ndarray):
            assert out.shape == (6,) and np.isfinite(out).all()
        elif hasattr(out, "lidar_pose"):
            arrays = [out.lidar_pose, out.true_ego_pos, *(c.cords for c in out.cameras.values()),
                      *(c.intrinsic for c in out.cameras.values()), out.vehicles.location, out.vehicles.center,
                      out.vehicles.extent, out.vehicles.angle]
            assert all(np.isfinite(a).all() for a in arrays)
            assert all(abs(np.linalg.det(c.intrinsic)) > 0 for c in out.cameras.values())
        else:
            assert isinstance(out, dict)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_yaml_random_bytes(scratch, data):
    scratch.write_bytes(data)
    _read_yaml_or_data_error(scratch)


_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(),
                    st.text(max_size=12), st.binary(max_size=8))
_STRUCTURES = st.recursive(_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=7),
                                                            st.dictionaries(st.text(max_size=10), inner, max_size=6)),
                           max_leaves=40)


@FUZZ
@given(doc=_STRUCTURES)
def test_yaml_random_structures(scratch, doc):
    scratch.write_text(yaml.dump(doc))
    _read_yaml_or_data_error(scratch)


def _valid_agent_doc() -> dict:
    cam = {"cords": [1.0, 2.0, 1.5, 0.0, 90.0, 0.0], "intrinsic": [[335.6, 0.0, 400.0], [0.0, 335.6, 300.0],
                                                                    [0.0, 0.0, 1.0]]}
    vehicle = {"location": [5.0, 1.0, 0.0], "center": [0.0, 0.0, 0.7], "extent": [2.0, 1.0, 0.8],
               "angle": [0.0, 10.0, 0.0], "speed": 3.0}
    return {f"camera{k}": {**cam} for k in range(4)} | {
        "lidar_pose": [1.0, 2.0, 1.9, 0.0, 90.0, 0.0], "true_ego_pos": [1.0, 2.0, 0.0, 0.0, 90.0, 0.0],
        "ego_speed": 12.0, "vehicles": {412: vehicle, 977: {**vehicle}}}


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


@FUZZ
@given(picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
       values=st.lists(st.one_of(_STRUCTURES, st.sampled_from([math.nan, math.inf, -math.inf, "1e400", "nan", 0.0])),
                       min_size=4, max_size=4),
       delete=st.booleans())
def test_yaml_valid_agent_files_with_random_leaves(scratch, picks, values, delete):
    doc = _valid_agent_doc()
    for pick, value in zip(picks, values):
        paths = [p for p in _paths(doc) if p]
        path = paths[pick % len(paths)]
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if delete and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    scratch.write_text(yaml.dump(doc))
    _read_yaml_or_data_error(scratch)


@pytest.mark.parametrize("text", [
    "[" * 5000 + "]" * 5000,  # libyaml composes deep nesting in quadratic time: 0.2 s here, 4 s at 20000
    "lidar_pose: " + "[" * 5000 + "]" * 5000,
    "a: &a [1, 2]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "lidar_pose: [*c, *c, *c, *c, *c, *c]\nvehicles: {1: {location: *c, center: *c, extent: *c, angle: *c}}\n",
    "lidar_pose: !!python/object/apply:os.system ['true']\n",
    "\xff\xfe\x00garbage",
])
def test_yaml_pathological_documents(scratch, text):
    scratch.write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    _read_yaml_or_data_error(scratch)


def test_the_valid_agent_document_reads(scratch):
    scratch.write_text(yaml.dump(_valid_agent_doc()))
    y = read_agent_yaml(scratch)
    assert y.vehicles.ids.tolist() == [412, 977] and y.cameras[3].intrinsic[0, 0] == pytest.approx(335.6)


# --- geometry -----------------------------------------------------------------------------------------------------

_PHYSICAL = st.floats(-1e6, 1e6)
_ANY = st.floats(allow_nan=True, allow_infinity=True)


@FUZZ
@given(pose=st.lists(_PHYSICAL, min_size=6, max_size=6), other=st.lists(_PHYSICAL, min_size=6, max_size=6))
def test_carla_poses_of_finite_numbers_are_finite_rigid_transforms(pose, other):
    for T in (carla_to_matrix(pose), sensor_pose_rh(pose), camera_pose_rh(pose), x1_to_x2(pose, other)):
        assert T.shape == (4, 4) and np.isfinite(T).all()
        R = T[:3, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_array_equal(T[3], [0, 0, 0, 1])


@FUZZ
@given(pose=st.lists(_ANY, min_size=6, max_size=6), where=st.integers(0, 5),
       bad=st.sampled_from([math.nan, math.inf, -math.inf]), batch=st.integers(1, 3))
def test_carla_poses_with_nan_or_inf_raise_our_error(pose, where, bad, batch):
    pose[where] = bad
    poses = np.tile(np.asarray(pose), (batch, 1))
    for f in (carla_to_matrix, sensor_pose_rh, camera_pose_rh, lambda p: x1_to_x2(p, np.zeros(6))):
        with pytest.raises(InvalidValueError):
            f(poses)


@pytest.mark.parametrize("shape", [(5,), (7,), (2, 3), ()])
def test_carla_poses_of_the_wrong_shape_raise_our_error(shape):
    with pytest.raises(CoopmapError, match="6 values"):
        carla_to_matrix(np.zeros(shape))


_K_ENTRY = st.one_of(st.floats(-1e4, 1e4), st.sampled_from([0.0, math.nan, math.inf]))


@FUZZ
@given(K=st.lists(_K_ENTRY, min_size=4, max_size=4),
       pts=st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(1e-3, 1e3)), min_size=1,
                    max_size=20),
       bad=st.lists(st.sampled_from([math.nan, math.inf, -math.inf]), max_size=3),
       as_torch=st.booleans())
def test_project_and_unproject(K, pts, bad, as_torch):
    fx, fy, cx, cy = K
    Kmat = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    P = np.array(pts, dtype=np.float64)
    for i, value in enumerate(bad):  # non-finite points at the start
        P[i % len(P), i % 3] = value
    conv = (lambda a: torch.from_numpy(a)) if as_torch else (lambda a: a)
    if not (np.isfinite(Kmat).all() and fx > 0 and fy > 0):
        with pytest.raises(InvalidValueError):
            project(conv(P), conv(Kmat))
        with pytest.raises(InvalidValueError):
            unproject(conv(P[:, :2]), conv(P[:, 2]), conv(Kmat))
        return
    uv, z = project(conv(P), conv(Kmat))
    uv, z = np.asarray(uv), np.asarray(z)
    good = np.isfinite(P).all(axis=1)
    assert np.isfinite(uv[good]).all() and np.isfinite(z[good]).all()  # a bad point spoils only itself
    back = np.asarray(unproject(conv(uv), conv(z), conv(Kmat)))
    assert np.isfinite(back[good]).all()
    if good.any() and min(fx, fy) > 1e-2:  # well-conditioned cameras: the round trip is exact to rounding
        np.testing.assert_allclose(back[good], P[good], rtol=1e-6, atol=1e-6 * (1 + np.abs(P[good]).max()))
