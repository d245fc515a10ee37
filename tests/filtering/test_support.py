"""Multi-frame support with GT ego motion: a static box is kept, a one-frame floater removed, a mover survives."""

import dataclasses

import numpy as np
import pytest
from filter_scenes import CAR_HALF, box_surface, ego_pose, frame_arrays, rigid, to_lidar

from coopmap.filtering import FilterConfig, HistoryFrame, filter_frame
from coopmap.filtering.filters import in_boxes
from coopmap.filtering.motion import gt_motion

K = 4
STATIC = rigid(30.0, (15.0, -4.0, 0.8))  # a parked car, world frame
MOVER_AT = [rigid(180.0, (30.0 - 3.0 * i, 4.0, 0.8)) for i in range(K + 1)]  # oncoming, 3 m per frame


def _scene(rng, i: int, floater: bool):
    """Frame i in its ego LiDAR frame: ground patch, the static car, the moving car, optionally a floater."""
    ground = np.c_[rng.uniform(0, 30, 6000), rng.uniform(-10, 10, 6000), np.zeros(6000)]
    static = box_surface(rng, 800, STATIC[:3, 3], CAR_HALF, 30.0)
    mover = box_surface(rng, 800, MOVER_AT[i][:3, 3], CAR_HALF, 0.0)
    parts = [ground, static, mover]
    if floater:  # a small cluster in mid-air, 2 m above the ground (inside the height band)
        parts.append(np.array([12.0, -8.0, 2.0]) + rng.normal(0, 0.05, (5, 3)))
    T = ego_pose(i, speed=2.5, yaw_rate=2.0)  # 25 m/s, turning 20 deg/s
    boxes = [(STATIC, np.array(CAR_HALF)), (MOVER_AT[i], np.array(CAR_HALF))]
    return frame_arrays(to_lidar(T, np.concatenate(parts)), T, boxes)


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return [_scene(rng, i, floater=(i == K)) for i in range(K + 1)]


def _history(frames, cfg):
    cur = frames[-1]
    out = []
    for f in frames[:-1]:
        _, info = filter_frame(f, [], dataclasses.replace(cfg, frames=0))
        out.append(HistoryFrame(info["single"].points, gt_motion(cur["T_world_from_egolidar"],
                                                               f["T_world_from_egolidar"])))
    return out


def _region_counts(pts, cur):
    """Points of the static car, the moving car and the floater (current frame). The cars' points count from 0.9 m
    above the ground: lower ones are within two support cells (0.4 m) of the ground, which supports them."""
    T_L_from_W = np.linalg.inv(cur["T_world_from_egolidar"])
    above = pts[:, 2] + 1.9 > 0.9
    static = above & in_boxes(pts, (T_L_from_W @ STATIC)[None], np.array([CAR_HALF]), 0.1)
    mover = above & in_boxes(pts, (T_L_from_W @ MOVER_AT[K])[None], np.array([CAR_HALF]), 0.1)
    floater = np.linalg.norm(pts - (T_L_from_W[:3, :3] @ [12.0, -8.0, 2.0] + T_L_from_W[:3, 3]), axis=1) < 0.5
    return int(static.sum()), int(mover.sum()), int(floater.sum())


def test_support_keeps_static_box_removes_floater_keeps_mover(frames):
    cfg = FilterConfig(voxel=0.0, sor_k=0, frames=K, min_support=K + 1, support_cell=0.4)
    cur = frames[-1]
    raw = _region_counts(cur["pred_points"].astype(np.float64), cur)
    assert raw[0] > 0 and raw[1] > 0 and raw[2] == 5
    kept, info = filter_frame(cur, _history(frames, cfg), cfg)
    assert info["n_history"] == K and info["min_support_used"] == K + 1
    static, mover, floater = _region_counts(kept, cur)
    assert static == raw[0]  # seen in all K + 1 frames
    assert floater == 0  # seen in this frame only
    assert mover == raw[1]  # no support, kept by the box rule
    assert info["n_kept_by_boxes"] >= 0.9 * raw[1]  # nearly all of them by the box rule alone


def test_without_the_box_rule_the_mover_loses_its_points_and_the_static_box_stays(frames):
    cfg = FilterConfig(voxel=0.0, sor_k=0, frames=K, min_support=K + 1, keep_boxes="none")
    cur = frames[-1]
    raw = _region_counts(cur["pred_points"].astype(np.float64), cur)
    kept, info = filter_frame(cur, _history(frames, cfg), cfg)
    static, mover, floater = _region_counts(kept, cur)
    assert static == raw[0] and floater == 0 and info["n_kept_by_boxes"] == 0
    assert mover < raw[1] // 10


def test_min_support_is_capped_by_the_history_and_one_keeps_everything(frames):
    cfg = FilterConfig(voxel=0.0, sor_k=0, frames=K, min_support=K + 1, keep_boxes="none")
    cur = frames[-1]
    n = len(cur["pred_points"])
    kept, info = filter_frame(cur, [], cfg)  # no history: the support filter cannot judge, keeps all
    assert len(kept) == n and info["min_support_used"] == 1
    kept, info = filter_frame(cur, _history(frames, cfg)[-1:], cfg)  # one previous frame: support 2 needed
    assert info["min_support_used"] == 2 and _region_counts(kept, cur)[2] == 0
    kept, _ = filter_frame(cur, _history(frames, cfg), dataclasses.replace(cfg, frames=0))
    assert len(kept) == n


def test_wrong_ego_motion_destroys_the_support(frames):
    """A control: with identity motion (ignoring the ego's 2.5 m per frame and turning) the static car loses its
    support."""
    cfg = FilterConfig(voxel=0.0, sor_k=0, frames=K, min_support=K + 1, keep_boxes="none")
    cur = frames[-1]
    hist = [HistoryFrame(h.points, np.eye(4)) for h in _history(frames, cfg)]
    kept, _ = filter_frame(cur, hist, cfg)
    static, _, _ = _region_counts(kept, cur)
    assert static < _region_counts(cur["pred_points"].astype(np.float64), cur)[0] // 10


def test_filter_frame_names_missing_arrays(frames):
    with pytest.raises(KeyError, match="T_ego_from_egolidar"):
        filter_frame({k: v for k, v in frames[0].items() if k != "T_ego_from_egolidar"}, [])
