"""Agent frames: the LiDAR frame lowered to the ground (docs/conventions.md, "Agent frames")."""

import shutil

import numpy as np
import pytest
import yaml

from coopmap.data.agent_frame import RIG_MAX, lidar_height_above_ground
from coopmap.data.dataset import ViewsDataset
from coopmap.data.yaml_io import read_agent_yaml
from coopmap.errors import DataError
from coopmap.geometry import F_FLIP, P_UE_FROM_CV, agent_frame_rh, carla_to_matrix, sensor_pose_rh


def _yaml(lidar_pose, true_ego_pos, tmp_path):
    path = tmp_path / "000068.yaml"
    path.write_text(yaml.safe_dump({"lidar_pose": [float(v) for v in lidar_pose],
                                    "true_ego_pos": [float(v) for v in true_ego_pos],
                                    "vehicles": {}}))
    return read_agent_yaml(path, cameras=())


def test_agent_frame_is_the_lidar_frame_lowered_along_its_own_z():
    pose = [10.0, -4.0, 7.0, 3.0, 30.0, -5.0]
    T = agent_frame_rh(pose, 6.0)
    L = sensor_pose_rh(pose)
    np.testing.assert_allclose(T[:3, :3], L[:3, :3])
    np.testing.assert_allclose(np.linalg.inv(L) @ T, np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, -6.0],
                                                               [0, 0, 0, 1]]), atol=1e-12)
    np.testing.assert_allclose(agent_frame_rh(pose, 0.0), L)  # OpenCOOD's frame: height 0


def test_height_from_the_vehicle_pose_when_it_is_the_rig(tmp_path):
    """OPV2V CAV: LiDAR mounted (-0.5, 0, 1.9) on a vehicle pitched 4 deg: height 1.9 exactly."""
    vehicle = [100.0, 50.0, 0.3, 0.0, 70.0, 4.0]
    lidar_xyz = (carla_to_matrix(vehicle) @ np.array([-0.5, 0.0, 1.9, 1.0]))[:3]
    y = _yaml([*lidar_xyz, 0.0, 70.0, 4.0], vehicle, tmp_path)
    h, source = lidar_height_above_ground(y, np.zeros((0, 3)), "x.pcd")
    assert source == "true_ego_pos" and h == pytest.approx(1.9, abs=1e-12)


def test_roadside_unit_height_from_its_own_returns(tmp_path):
    """The real-RSU case: true_ego_pos 73 m away at z = 78.8. Returns: a flat road 6.2 m below the LiDAR (80 %)
    and box tops above it (20 %): the 5th percentile of z is the road."""
    rng = np.random.default_rng(0)
    road = np.c_[rng.uniform(-25, 25, (800, 2)), np.full(800, -6.2)]
    boxes = np.c_[rng.uniform(-25, 25, (200, 2)), rng.uniform(-5.0, -4.6, 200)]
    y = _yaml([0.0, 0.0, 6.2, 0.0, 0.0, 0.0], [73.0, 0.0, 78.8, 0.0, 0.0, 0.0], tmp_path)
    h, source = lidar_height_above_ground(y, np.r_[road, boxes], "x.pcd")
    assert source == "lidar" and h == pytest.approx(6.2, abs=1e-9)
    assert np.hypot(73.0, 78.8 - 6.2) > RIG_MAX
    with pytest.raises(DataError, match=r"x\.pcd: cannot place the agent on the ground.*only 50 returns"):
        lidar_height_above_ground(y, road[:50], "x.pcd")
    # an RSU whose true_ego_pos is its LiDAR pose (a rig of height 0): never trusted for a roadside unit
    y = _yaml([0.0, 0.0, 6.2, 0.0, 0.0, 0.0], [0.0, 0.0, 6.2, 0.0, 0.0, 0.0], tmp_path)
    assert lidar_height_above_ground(y, np.r_[road, boxes], "x.pcd", roadside=True) == (pytest.approx(6.2), "lidar")
    assert lidar_height_above_ground(y, np.r_[road, boxes], "x.pcd")[1] == "lidar"  # 0 m: not a vehicle rig


def test_views_use_lidar_ground_frames_and_an_rsu_gets_rig_sized_lever_arms(clean_tree, make_cfg, tmp_path):
    """A copy of a CAV as a roadside unit whose true_ego_pos is 73 m away (as in a real RSU dump): its agent
    frame equals the CAV's (found from its returns, to 1 mm), every camera lever arm is < 3.5 m, and the ground
    (world z = 0 of the synthetic scene) is at height 0 in every agent frame."""
    root = tmp_path / "tree"
    shutil.copytree(clean_tree, root, ignore=shutil.ignore_patterns(".coopmap_index.json"))
    scen = next((root / "train").iterdir())
    cav = sorted(p.name for p in scen.iterdir() if p.is_dir())[-1]
    shutil.copytree(scen / cav, scen / f"-{cav}")
    for yml in (scen / f"-{cav}").glob("*.yaml"):
        doc = yaml.safe_load(yml.read_text())
        doc["true_ego_pos"] = [doc["lidar_pose"][0] + 73.0, doc["lidar_pose"][1], 78.8, 0.0, 0.0, 0.0]
        yml.write_text(yaml.safe_dump(doc))
    ds = ViewsDataset(make_cfg(root, max_cav=5))
    views = ds[0]
    ids = [int(v["agent_id"]) for v in views[::4]]
    assert -int(cav) in ids and int(cav) in ids
    pose = {int(v["agent_id"]): v["agent_pose"].numpy().astype(np.float64) for v in views[::4]}
    np.testing.assert_allclose(pose[-int(cav)], pose[int(cav)], atol=1e-3)
    for v in views:
        assert np.linalg.norm(v["T_agent_from_cam"][:3, 3].numpy()) < 3.5
    ts = f"{int(views[0]['timestamp']):06d}"
    for v in views[::4]:
        y = read_agent_yaml(scen / str(int(v["agent_id"])) / f"{ts}.yaml")
        T_world_from_cam = F_FLIP @ carla_to_matrix(y.cameras[0].cords) @ P_UE_FROM_CV
        T_agent_from_world = v["T_agent_from_cam"].numpy().astype(np.float64) @ np.linalg.inv(T_world_from_cam)
        ground = T_agent_from_world @ F_FLIP @ np.append(y.lidar_pose[:2], [0.0, 1.0])  # world z = 0 below
        assert abs(ground[2]) < 2e-3, (int(v["agent_id"]), ground)
