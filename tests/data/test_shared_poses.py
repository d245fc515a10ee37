"""Shared agent poses (V2X) as data: perfect sharing, seeded noise in closed form, the dataset's own GNSS pose."""

import math

import numpy as np
import pytest
import torch

from coopmap.data.config import SharedPoseConfig
from coopmap.data.dataset import ViewsDataset, collate_views
from coopmap.data.shared_poses import (
    SHARED_VIEW_KEYS,
    SharedPoseOptions,
    draw_pose_noise,
    noise_seed,
    noise_transform,
)
from coopmap.data.yaml_io import load_yaml, read_agent_yaml
from coopmap.errors import ConfigError
from coopmap.geometry import camera_pose_rh, quat_xyzw_to_rotmat, sensor_pose_rh
from coopmap.metrics.pose import agent_pose_abs, pose_errors

RES = [126, 98]


def _views(root, make_cfg, **shared):
    cfg = make_cfg(root, resolution=RES, shared_pose=SharedPoseConfig(**shared))
    ds = ViewsDataset(cfg)
    return ds, ds[0]


def _col(views, key):
    return torch.stack([v[key] for v in views]).double()


def test_perfect_sharing_equals_the_gt(clean_tree, make_cfg):
    _, views = _views(clean_tree, make_cfg)
    for view in views:
        assert set(SHARED_VIEW_KEYS) <= set(view)
        for key, shape in SHARED_VIEW_KEYS.items():
            assert tuple(view[key].shape) == shape and view[key].dtype == torch.float32
        for shared, gt in (("shared_agent_pose", "agent_pose"), ("shared_camera_pose", "camera_pose"),
                           ("shared_camera_pose_quats", "camera_pose_quats"),
                           ("shared_camera_pose_trans", "camera_pose_trans")):
            torch.testing.assert_close(view[shared], view[gt], atol=1e-6, rtol=0)
        assert view["shared_pose_sigma"].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("shared", [dict(pos_std_m=0.5, yaw_std_deg=0.5),
                                    dict(pos_std_m=0.3, z_std_m=0.2, yaw_std_deg=2.0),
                                    dict(pos_std_m=0.0, yaw_std_deg=3.0, roll_std_deg=1.0, pitch_std_deg=1.0)])
def test_input_agent_error_is_the_drawn_noise(clean_tree, make_cfg, shared):
    """Noise in the agent's own frame, ego exact: per cooperator, the shared pose's translation error is |(dx, dy,
    dz)| and its rotation error the angle of Rz(yaw) Ry(pitch) Rx(roll) (the yaw alone without roll / pitch)."""
    ds, views = _views(clean_tree, make_cfg, seed=7, **shared)
    opts = SharedPoseOptions(seed=7, **shared)
    rec = ds.keys[0]
    gt, sh = _col(views, "camera_pose"), _col(views, "shared_camera_pose")
    rig = _col(views, "T_agent_from_cam")
    agent, cam = _col(views, "agent_index").long(), _col(views, "camera_index").long()
    expected_t, expected_r = [], []
    for a, agent_id in enumerate(rec.agent_ids):
        noise = draw_pose_noise(opts, rec.scenario, rec.timestamp, agent_id)
        N = noise_transform(noise)
        mine = (agent == a).nonzero()[:, 0]
        t, r = pose_errors(sh[mine], gt[mine], pred_ref=gt[0], gt_ref=gt[0])
        if a == 0:  # the ego keeps its rig exactly
            np.testing.assert_allclose(t, 0, atol=1e-6)
            continue
        exp_t = float(np.linalg.norm(noise[:3]))
        exp_r = math.degrees(math.acos(np.clip((np.trace(N[:3, :3]) - 1) / 2, -1, 1)))
        if shared.get("roll_std_deg", 0) == 0:
            assert exp_r == pytest.approx(abs(noise[4]), abs=1e-9)
        # the agent (vehicle) pose error is exactly the drawn noise
        A, A_sh = views[mine[0]]["agent_pose"].double(), views[mine[0]]["shared_agent_pose"].double()
        E = torch.linalg.inv(A) @ A_sh
        np.testing.assert_allclose(E.numpy(), N, atol=2e-5)
        expected_t.append(exp_t)
        expected_r.append(exp_r)
        # every camera of the agent: shared agent pose x its known rig
        for v in mine.tolist():
            torch.testing.assert_close(views[v]["shared_camera_pose"].double(),
                                       views[v]["shared_agent_pose"].double() @ rig[v], atol=2e-5, rtol=0)
        # quats (XYZW) and trans are the same pose
        for v in mine.tolist():
            R = quat_xyzw_to_rotmat(views[v]["shared_camera_pose_quats"].double())
            torch.testing.assert_close(R, sh[v, :3, :3], atol=1e-6, rtol=0)
            torch.testing.assert_close(views[v]["shared_camera_pose_trans"].double(), sh[v, :3, 3])
        assert views[v]["shared_pose_sigma"][0].item() == pytest.approx(
            math.sqrt(2 * opts.pos_std_m ** 2 + opts.z_std_m ** 2), rel=1e-6)
    it, ir = agent_pose_abs(sh, gt, rig, agent, cam)
    assert it == pytest.approx(np.mean(expected_t), abs=1e-4)
    assert ir == pytest.approx(np.mean(expected_r), abs=2e-3)


def test_noise_ego_reaches_the_others_through_the_relative_pose(clean_tree, make_cfg):
    """noise_ego (HEAL): the ego's cameras stay exact; agent a is placed at inv(A_e N_e) A_a N_a from the ego."""
    shared = dict(pos_std_m=0.5, yaw_std_deg=1.0, seed=3, noise_ego=True)
    ds, views = _views(clean_tree, make_cfg, **shared)
    opts, rec = SharedPoseOptions(**shared), ds.keys[0]
    N = [noise_transform(draw_pose_noise(opts, rec.scenario, rec.timestamp, a)) for a in rec.agent_ids]
    ego = views[0]["agent_pose"].double().numpy()
    for view in views:
        a = int(view["agent_index"])
        if a == 0:
            torch.testing.assert_close(view["shared_camera_pose"], view["camera_pose"], atol=1e-6, rtol=0)
            continue
        A = view["agent_pose"].double().numpy()
        expected = ego @ np.linalg.inv(N[0]) @ np.linalg.inv(ego) @ A @ N[a]
        np.testing.assert_allclose(view["shared_agent_pose"].double().numpy(), expected, atol=5e-5)


def test_same_seed_same_noise_in_training_and_evaluation(clean_tree, make_cfg):
    """The noise of an agent-frame depends only on (seed, scenario, timestamp, agent): a training dataset, an
    evaluation dataset (another mode, so other sample indices) and a collated batch see the same shared poses."""
    shared = dict(pos_std_m=0.5, yaw_std_deg=0.5, seed=11)
    ds_train, views = _views(clean_tree, make_cfg, **shared)
    cfg_eval = make_cfg(clean_tree, resolution=RES, mode="mixed", shared_pose=SharedPoseConfig(**shared))
    ds_eval = ViewsDataset(cfg_eval)
    j = next(i for i, k in enumerate(ds_eval.keys) if k.agent_ids == ds_train.keys[0].agent_ids)
    again = collate_views([ds_eval[j]])
    for a, b in zip(views, again):
        torch.testing.assert_close(a["shared_camera_pose"], b["shared_camera_pose"][0], atol=0, rtol=0)
    _, other = _views(clean_tree, make_cfg, **{**shared, "seed": 12})
    assert (_col(views, "shared_agent_pose") - _col(other, "shared_agent_pose")).abs().max() > 1e-3
    # stable across processes (sha256, not Python's salted hash): a pinned value
    assert noise_seed(0, "2021_08_16_22_26_54", "000068", "1732") == noise_seed(0, "2021_08_16_22_26_54", 68, 1732)
    assert noise_seed(0, "s", 1, 2) == int.from_bytes(__import__("hashlib").sha256(b"0/s/1/2").digest()[:8], "little")


def test_predicted_ego_pos_source(clean_tree, make_cfg):
    """source=predicted_ego_pos: each cooperator is misplaced rigidly by its GNSS error P inv(V) (world frame)."""
    ds, views = _views(clean_tree, make_cfg, source="predicted_ego_pos")
    rec = ds.keys[0]
    scen = next(s for s in ds.index.scenarios if s.name == rec.scenario)
    yamls = [read_agent_yaml(f"{scen.path}/{a}/{rec.timestamp}.yaml", (0,)) for a in rec.agent_ids]
    T_v0_from_world = np.linalg.inv(camera_pose_rh(yamls[0].cameras[0].cords))
    for view in views:
        a = int(view["agent_index"])
        if a == 0:
            torch.testing.assert_close(view["shared_agent_pose"], view["agent_pose"], atol=1e-6, rtol=0)
            continue
        pred = np.asarray(load_yaml(yamls[a].path, keys=("predicted_ego_pos",))["predicted_ego_pos"], float)
        err = sensor_pose_rh(pred) @ np.linalg.inv(sensor_pose_rh(yamls[a].true_ego_pos))
        A_world = np.linalg.inv(T_v0_from_world) @ view["agent_pose"].double().numpy()
        expected = T_v0_from_world @ err @ A_world
        np.testing.assert_allclose(view["shared_agent_pose"].double().numpy(), expected, atol=1e-4)
        # an agent whose frame is its vehicle frame lands on its predicted pose: it moves by the GNSS error
        if np.allclose(A_world, sensor_pose_rh(yamls[a].true_ego_pos), atol=1e-4):
            moved = np.linalg.norm(view["shared_agent_pose"][:3, 3].double().numpy()
                                   - view["agent_pose"][:3, 3].double().numpy())
            assert moved == pytest.approx(np.linalg.norm(pred[:3] - yamls[a].true_ego_pos[:3]), abs=1e-4)
            assert moved > 0.01


def test_bad_settings():
    with pytest.raises(ConfigError, match="source must be one of"):
        SharedPoseOptions(source="gnss")
    with pytest.raises(ConfigError, match="pos_std_m must be a finite number >= 0"):
        SharedPoseOptions(pos_std_m=-1.0)
    assert SharedPoseOptions.from_config(None) == SharedPoseOptions()
    assert SharedPoseOptions.from_config(SharedPoseConfig(pos_std_m=0.5)).pos_std_m == 0.5
