"""The tree ``coopmap synth`` writes: OPV2V layout, every yaml key of spec section 3, consistent values."""

import re
from itertools import combinations

import numpy as np
import pytest
from opv2v_files import agent_frames, intensity_of, read_pcd, read_yaml
from synth_checks import listing_errors

from coopmap.geometry import carla_intrinsics, carla_to_matrix, x1_to_x2
from coopmap.synth.config import LIDAR_MOUNT

SCENARIO_RE = re.compile(r"^\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}$")
STAMP_FILES = ["{t}.pcd", "{t}.yaml"] + [f"{{t}}_camera{k}.png" for k in range(4)] + [
    f"{{t}}_depth{k}.npy" for k in range(4)]


@pytest.mark.parametrize("split", ["train", "test"])
def test_tree_layout_is_opv2v(synth_tree, split):
    scenarios = sorted(p for p in (synth_tree / split).iterdir())
    assert len(scenarios) == 1 and SCENARIO_RE.match(scenarios[0].name)
    proto = read_yaml(scenarios[0] / "data_protocol.yaml")
    lidar = proto["vehicle_base"]["sensing"]["perception"]["lidar"]
    assert (lidar["channels"], lidar["upper_fov"], lidar["lower_fov"], lidar["range"]) == (64, 2.0, -25.0, 120.0)
    assert (lidar["noise_stddev"], lidar["dropoff_general_rate"], lidar["rotation_frequency"]) == (0.02, 0.1, 20.0)
    agents = sorted(p for p in scenarios[0].iterdir() if p.is_dir())
    assert len(agents) == 3 and all(a.name.isdigit() for a in agents)
    stamps = None
    for agent in agents:
        mine = sorted(p.stem for p in agent.glob("*.yaml"))
        assert all(len(s) == 6 and s.isdigit() for s in mine)
        assert np.all(np.diff([int(s) for s in mine]) == 2)
        assert stamps is None or mine == stamps  # all CAVs share timestamps
        stamps = mine
        expected = sorted(f.format(t=t) for t in mine for f in STAMP_FILES)
        assert sorted(p.name for p in agent.iterdir()) == expected
    assert len(stamps) == 3


def test_splits_hold_different_scenes(synth_tree):
    names = [next((synth_tree / s).iterdir()).name for s in ("train", "test")]
    assert names[0] != names[1]


def _frames(tree):
    return [(agent, stamp, read_yaml(agent / f"{stamp}.yaml")) for agent, stamp in agent_frames(tree / "train")]


def test_yaml_has_every_key_of_the_spec_with_shapes(synth_tree):
    for _, _, meta in _frames(synth_tree):
        for key in ("lidar_pose", "true_ego_pos", "predicted_ego_pos"):
            assert len(meta[key]) == 6
        assert isinstance(meta["ego_speed"], float)
        assert np.asarray(meta["plan_trajectory"]).shape[1] == 3
        for k in range(4):
            cam = meta[f"camera{k}"]
            assert len(cam["cords"]) == 6
            assert np.asarray(cam["intrinsic"]).shape == (3, 3) and np.asarray(cam["extrinsic"]).shape == (4, 4)
        assert meta["vehicles"], "every frame should see some vehicles"
        for vid, v in meta["vehicles"].items():
            assert isinstance(vid, int)
            assert {k: len(v[k]) for k in ("location", "center", "extent", "angle")} == dict.fromkeys(
                ("location", "center", "extent", "angle"), 3)
            assert isinstance(v["speed"], float)
            assert 1.5 < v["extent"][0] < 3.0 and 0.8 < v["extent"][1] < 1.2  # half extents, OPV2V-like cars


def test_intrinsics_and_image_files_follow_the_image_size(synth_tree):
    from PIL import Image

    agent, stamp, meta = _frames(synth_tree)[0]
    K = np.asarray(meta["camera0"]["intrinsic"])
    np.testing.assert_allclose(K, carla_intrinsics(200, 150), rtol=1e-15)  # as CARLA writes it
    assert (K[0, 2], K[1, 2]) == (100.0, 75.0)
    assert K[0, 0] == pytest.approx(100.0 / np.tan(np.radians(50.0)))  # 800x600 scaled by 1/4
    assert Image.open(agent / f"{stamp}_camera2.png").size == (200, 150)
    depth = np.load(agent / f"{stamp}_depth2.npy")
    assert depth.shape == (150, 200) and depth.dtype == np.float32


def test_extrinsic_is_lidar_to_camera_in_ue_axes(synth_tree):
    for _, _, meta in _frames(synth_tree):
        T_lidar = carla_to_matrix(meta["lidar_pose"])
        for k in range(4):
            cam = meta[f"camera{k}"]
            expected = np.linalg.inv(carla_to_matrix(cam["cords"])) @ T_lidar
            np.testing.assert_allclose(np.asarray(cam["extrinsic"]), expected, atol=1e-6)


def test_lidar_pose_is_the_vehicle_pose_with_the_opv2v_mount(synth_tree):
    for _, _, meta in _frames(synth_tree):
        T = x1_to_x2(meta["lidar_pose"], meta["true_ego_pos"])  # LiDAR frame -> vehicle frame
        np.testing.assert_allclose(T, carla_to_matrix(LIDAR_MOUNT), atol=1e-9)
        assert abs(meta["true_ego_pos"][2]) < 0.05  # vehicle origin on the ground
        d = np.subtract(meta["predicted_ego_pos"], meta["true_ego_pos"])
        assert np.hypot(d[0], d[1]) < 2.0 and abs(d[4]) < 3.0 and np.any(d != 0)  # small GNSS-like noise


def test_ego_speed_matches_motion_and_plan(synth_tree):
    frames = _frames(synth_tree)
    by_agent: dict = {}
    for agent, stamp, meta in frames:
        by_agent.setdefault(agent.name, []).append((int(stamp), meta))
    for seq in by_agent.values():
        for (s0, m0), (s1, m1) in zip(seq, seq[1:]):
            dist = np.hypot(*np.subtract(m1["true_ego_pos"][:2], m0["true_ego_pos"][:2]))
            seconds = (s1 - s0) * 0.05  # CARLA frames at 20 Hz
            assert dist / seconds * 3.6 == pytest.approx(m0["ego_speed"], rel=1e-9)
        for _, meta in seq:
            plan = np.asarray(meta["plan_trajectory"])
            np.testing.assert_allclose(plan[:, 2], meta["ego_speed"])  # third value is a speed (km/h)
            yaw = np.radians(meta["true_ego_pos"][4])
            ahead = (plan[:, :2] - meta["true_ego_pos"][:2]) @ [np.cos(yaw), np.sin(yaw)]
            assert np.all(np.diff(ahead) > 0) and ahead[0] > 0


def test_cavs_are_within_70m_and_vehicles_move(synth_tree):
    frames = _frames(synth_tree)
    stamps = sorted({s for _, s, _ in frames})
    for stamp in stamps:
        pos = [m["true_ego_pos"][:2] for _, s, m in frames if s == stamp]
        assert max(np.hypot(*np.subtract(a, b)) for a, b in combinations(pos, 2)) < 70.0
    first = {vid: v for _, s, m in frames if s == stamps[0] for vid, v in m["vehicles"].items()}
    last = {vid: v for _, s, m in frames if s == stamps[-1] for vid, v in m["vehicles"].items()}
    moved = [vid for vid in first.keys() & last.keys() if first[vid]["speed"] > 1.0]
    assert moved
    for vid in moved:
        step = np.hypot(*np.subtract(last[vid]["location"][:2], first[vid]["location"][:2]))
        assert step == pytest.approx(first[vid]["speed"] / 3.6 * (int(stamps[-1]) - int(stamps[0])) * 0.05)


def test_listed_vehicles_are_exactly_those_the_lidar_hits(exact_tree):
    """Noise off: every listed box holds >= 1 return (2 cm margin); no known unlisted vehicle holds any.

    Returns on the road (world z < 1 cm) are ignored: a box's grown bottom touches the road.
    """
    tree, _ = exact_tree
    frames = [(a, s, read_yaml(a / f"{s}.yaml")) for a, s in agent_frames(tree)]
    assert sum(len(m["vehicles"]) for _, _, m in frames) > 10
    assert listing_errors(frames, lambda a, s: read_pcd(a / f"{s}.pcd")[1]) == []


def test_lidar_returns_are_a_64_channel_sweep(exact_tree):
    tree, _ = exact_tree
    for agent, stamp in agent_frames(tree):
        rows = read_pcd(agent / f"{stamp}.pcd")[1]
        pts = rows[:, :3].astype(np.float64)
        rng = np.linalg.norm(pts, axis=1)
        elev = np.degrees(np.arcsin(pts[:, 2] / rng))
        assert 40_000 <= len(pts) <= 62_000
        assert rng.max() <= 120.0 + 1e-3 and elev.max() <= 2.0 + 1e-3 and elev.min() >= -25.0 - 1e-3
        assert len(np.unique(np.round(elev, 2))) == 64
        # intensity = exp(-0.004 r) quantised to the red byte
        np.testing.assert_allclose(intensity_of(rows[:, 3]), np.round(255 * np.exp(-0.004 * rng)) / 255,
                                   atol=0.5 / 255 + 1e-6)
