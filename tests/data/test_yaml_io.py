"""Agent yaml reading: values, key selection, safety, and one clear error per malformed key."""

import numpy as np
import pytest
import yaml

from coopmap.data.yaml_io import SAFE_LOADER, load_yaml, read_agent_yaml, read_lidar_pose
from coopmap.errors import DataError

K = [[335.639852470912, 0.0, 400.0], [0.0, 335.639852470912, 300.0], [0.0, 0.0, 1.0]]


def agent_doc(**over):
    doc = {
        "lidar_pose": [144.33, -388.94, 1.93, 0.078, 174.18, 0.21],
        "true_ego_pos": [144.83, -388.99, 0.03, 0.078, 174.18, 0.21],
        "predicted_ego_pos": [144.8, -389.0, 0.03, 0.0, -185.95, 0.0],
        "plan_trajectory": [[1.0, 2.0, 30.0]] * 50,
        "ego_speed": 30.1,
        "vehicles": {1732: {"location": [150.0, -390.0, 0.03], "center": [0.0, 0.0, 0.7],
                            "extent": [2.4, 1.0, 0.75], "angle": [0.0, 170.0, 0.0], "speed": 20.0},
                     650: {"location": [120.0, -380.0, 0.03], "center": [0.1, 0.0, 0.75],
                           "extent": [2.2, 0.9, 0.8], "angle": [0.1, -10.0, 0.2], "speed": 0.0}},
    }
    for k in range(4):
        doc[f"camera{k}"] = {"cords": [141.35, -388.64, 1.04, 0.0759, 174.18 + 90 * k, 0.2069], "intrinsic": K,
                             "extrinsic": np.eye(4).tolist()}
    doc.update(over)
    return doc


def write(tmp_path, doc, name="000068.yaml", flow=False):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, default_flow_style=flow))
    return path


def test_reads_values(tmp_path):
    a = read_agent_yaml(write(tmp_path, agent_doc()))
    np.testing.assert_array_equal(a.lidar_pose, [144.33, -388.94, 1.93, 0.078, 174.18, 0.21])
    np.testing.assert_array_equal(a.cameras[2].cords[4], 174.18 + 180)
    np.testing.assert_array_equal(a.cameras[0].intrinsic, K)
    assert a.vehicles.ids.tolist() == [650, 1732]  # sorted by id
    np.testing.assert_array_equal(a.vehicles.extent[1], [2.4, 1.0, 0.75])
    np.testing.assert_array_equal(a.vehicles.angle[0], [0.1, -10.0, 0.2])


def test_flow_style_and_full_document_give_the_same(tmp_path):
    block = read_agent_yaml(write(tmp_path, agent_doc()))
    flow = read_agent_yaml(write(tmp_path, agent_doc(), "f.yaml", flow=True))
    np.testing.assert_array_equal(block.vehicles.location, flow.vehicles.location)
    np.testing.assert_array_equal(block.cameras[3].cords, flow.cameras[3].cords)


def test_lidar_pose_only(tmp_path):
    np.testing.assert_array_equal(read_lidar_pose(write(tmp_path, agent_doc()))[:2], [144.33, -388.94])


def test_empty_vehicles(tmp_path):
    assert read_agent_yaml(write(tmp_path, agent_doc(vehicles={}))).vehicles.ids.size == 0


def test_loader_is_the_safe_c_loader():
    assert SAFE_LOADER is getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    assert issubclass(SAFE_LOADER, yaml.CSafeLoader)


def test_python_tags_are_never_constructed(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("lidar_pose: !!python/object/apply:os.system ['echo pwned > %s']\n" % (tmp_path / "x"))
    with pytest.raises(DataError, match="lidar_pose"):
        read_lidar_pose(path)
    with pytest.raises(DataError):
        load_yaml(path)  # the generic loader is safe too: it refuses the tag
    assert not (tmp_path / "x").exists()


def _bad(tmp_path, **over):
    doc = agent_doc()
    for key, value in over.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return write(tmp_path, doc)


@pytest.mark.parametrize("over, match", [
    ({"lidar_pose": None}, "missing key 'lidar_pose'"),
    ({"true_ego_pos": [1.0, 2.0]}, "'true_ego_pos' must be a list of 6 numbers"),
    ({"lidar_pose": [1.0, 2.0, float("nan"), 0, 0, 0]}, "'lidar_pose' has a non-finite value"),
    ({"lidar_pose": [1.0, 2.0, "a", 0, 0, 0]}, "'lidar_pose' has a non-number"),
    ({"camera1": None}, "missing key 'camera1'"),
    ({"camera0": {"cords": [0, 0, 0, 0, float("nan"), 0], "intrinsic": K}}, "'camera0.cords' has a non-finite"),
    ({"camera0": {"cords": [0] * 6}}, "missing key 'camera0.intrinsic'"),
    ({"camera0": {"cords": [0] * 6, "intrinsic": [[0, 0, 0], [0, 0, 0], [0, 0, 1]]}}, "not an invertible"),
    ({"camera0": {"cords": [0] * 6, "intrinsic": [[1, 0], [0, 1]]}}, "must be a 3x3 matrix"),
    ({"vehicles": None}, "missing key 'vehicles'"),
    ({"vehicles": {5: {"location": [0, 0, 0], "center": [0, 0, 0], "angle": [0, 0, 0]}}},
     "missing key 'vehicles.5.extent'"),
    ({"vehicles": {5: {"location": [0, 0, float("inf")], "center": [0, 0, 0], "extent": [1, 1, 1],
                       "angle": [0, 0, 0]}}}, "'vehicles.5.location' has a non-finite"),
    ({"vehicles": {5: {"location": [0, 0, 0], "center": [0, 0, 0], "extent": [1, -1, 1], "angle": [0, 0, 0]}}},
     "'vehicles.5.extent' must be non-negative"),
])
def test_each_malformed_key_is_named_with_the_file(tmp_path, over, match):
    path = _bad(tmp_path, **over)
    with pytest.raises(DataError, match=match) as err:
        read_agent_yaml(path)
    assert str(path) in str(err.value)


def test_invalid_yaml_and_missing_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("lidar_pose: [1, 2\nvehicles: {}\n")
    with pytest.raises(DataError, match="invalid YAML"):
        read_agent_yaml(path)
    with pytest.raises(DataError, match="cannot read yaml"):
        read_agent_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(DataError, match="mapping"):
        read_agent_yaml(tmp_path / "list.yaml")


def _numpy_dump(doc) -> str:
    """What OpenCDA's dumper writes when its values are numpy scalars: PyYAML's full ``yaml.dump``."""
    def to_numpy(x):
        if isinstance(x, dict):
            return {k: to_numpy(v) for k, v in x.items()}
        if isinstance(x, list):
            return [to_numpy(v) for v in x]
        return np.float64(x) if isinstance(x, float) else x

    return yaml.dump(to_numpy(doc))


def test_numpy_scalar_dumps_read_as_numbers_anywhere_without_executing(tmp_path):
    """Every float of the document as a numpy-scalar dump (anchors and aliases for the repeated dtype included):
    the same values as the plain file, through the agent reader, the index's pose reader and the generic loader."""
    text = _numpy_dump(agent_doc(ego_speed=np.float32(30.5)))
    assert "!!python/object/apply:numpy" in text and "*id001" in text
    path = tmp_path / "np.yaml"
    path.write_text(text)
    plain = read_agent_yaml(write(tmp_path, agent_doc()))
    got = read_agent_yaml(path)
    np.testing.assert_array_equal(got.lidar_pose, plain.lidar_pose)
    np.testing.assert_array_equal(got.cameras[3].intrinsic, plain.cameras[3].intrinsic)
    np.testing.assert_array_equal(got.vehicles.location, plain.vehicles.location)
    np.testing.assert_array_equal(read_lidar_pose(path), plain.lidar_pose)
    doc = load_yaml(path)
    assert doc["ego_speed"] == 30.5 and doc["vehicles"][1732]["angle"] == [0.0, 170.0, 0.0]
    # numpy < 2 spelling, a big-endian int64 and a hand-made 'O' (object) dtype
    old = ("lidar_pose:\n" + "- !!python/object/apply:numpy.core.multiarray.scalar\n"
           "  - !!python/object/apply:numpy.dtype\n    args: [i8, 0, 1]\n    state: !!python/tuple [3, '>', null]\n"
           "  - !!binary |\n    AAAAAAAAAAc=\n" + "- 1.0\n" * 5)
    path.write_text(old)
    assert read_lidar_pose(path).tolist() == [7.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    path.write_text(old.replace("i8", "O"))
    with pytest.raises(DataError, match="'lidar_pose' must contain numbers"):
        read_lidar_pose(path)
    with pytest.raises(DataError):
        load_yaml(path)
    # the generic loader is the safe loader plus that one decoding constructor
    from coopmap.data import yaml_io

    assert issubclass(yaml_io._NumpySafeLoader, SAFE_LOADER)
    assert set(yaml_io._NumpySafeLoader.yaml_constructors) - set(SAFE_LOADER.yaml_constructors) == set(
        yaml_io._NUMPY_SCALAR_TAGS)


def test_a_vehicle_without_center_gets_zero_offset_as_heal(tmp_path):
    doc = agent_doc()
    del doc["vehicles"][650]["center"]
    a = read_agent_yaml(write(tmp_path, doc))
    np.testing.assert_array_equal(a.vehicles.center, [[0.0, 0.0, 0.0], [0.0, 0.0, 0.7]])
