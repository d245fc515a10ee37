"""Hand-made samples (views + predictions + fused GT LiDAR) with exactly known errors.

Scene frame S: right-handed, z up, ground at z = 0, the ego vehicle at the origin. Each agent carries the same
4-camera rig (x forward, y left, z up; cameras at OPV2V-like mounts and yaws) and the ego a LiDAR at (-0.5, 0, 1.9).
World = the ego's camera0 (OpenCV axes). Every pixel of the prediction has a depth; the GT depth map keeps a
checkerboard of them (the sparse LiDAR GT), and row 0 is sky on the views with dense depth.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coopmap.geometry import depthmap_to_pts_cam, opv2v_intrinsics, transform_points
from scene_frames import T_EGO_FROM_LIDAR, rigid  # noqa: F401  (re-exported for the tests)

#: OpenCV camera axes into vehicle axes (x fwd, y left, z up): cv z -> x, cv x -> -y, cv y -> -z.
R_VEH_FROM_CV = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
MOUNTS = [((2.5, 0.0, 1.0), 0.0), ((0.0, -0.3, 1.8), -100.0), ((0.0, 0.3, 1.8), 100.0), ((-2.0, 0.0, 1.5), 180.0)]



def rig(k: int) -> np.ndarray:
    """T_agent_from_cam of camera k."""
    T = rigid(MOUNTS[k][1], MOUNTS[k][0])
    T[:3, :3] = T[:3, :3] @ R_VEH_FROM_CV
    return T


def _t(x, dtype=torch.float32):
    return torch.as_tensor(np.asarray(x))[None].to(dtype)


def build_sample(n_agents=2, H=12, W=16, scale=1.0, agent_offset_m=0.0, agent_rot_deg=0.0, dense_views=(),
                 far_sky=False, pred_world=None, seed=0):
    """(views, preds, gt_lidar_ego_lidar, info) for a sample with exactly injected prediction errors.

    - ``scale``: every metric prediction (depths, points, camera translations) multiplied by it (about view 0);
    - ``agent_offset_m`` / ``agent_rot_deg``: each non-ego agent's predicted rig moved along its own forward axis /
      yawed about its own origin (its predicted points move with it; the camera-frame depths are unchanged);
    - ``pred_world``: a 4x4 rigid transform applied to the whole prediction (its view 0 is then not the identity);
    - ``dense_views``: views with a dense depth map whose row 0 is sky; with ``far_sky`` the left half of those sky
      pixels is predicted 200 m away (the right half at the scene depth).
    """
    rng = np.random.default_rng(seed)
    K = opv2v_intrinsics(W, H)
    agents = [np.eye(4)] + [rigid(30.0 * a, (12.0 * a, 4.0 * a, 0.0)) for a in range(1, n_agents)]
    T_S_from_cam = [agents[a] @ rig(k) for a in range(n_agents) for k in range(4)]
    T_world_from_S = np.linalg.inv(T_S_from_cam[0])
    views, preds, gt_pts = [], [], []
    checker = (np.add.outer(np.arange(H), np.arange(W)) % 2 == 0)
    for i, T_Sc in enumerate(T_S_from_cam):
        a, k = divmod(i, 4)
        depth = rng.uniform(2.0, 30.0, (H, W))
        valid = checker.copy()
        dense = np.zeros((H, W))
        if i in dense_views:
            valid[0] = False
            dense = depth.copy()
            dense[0] = 0.0
            if far_sky:
                depth[0, : W // 2] = 200.0
        gt_depth = depth * valid
        pose = T_world_from_S @ T_Sc
        pts_cam = depthmap_to_pts_cam(gt_depth, K)
        pts = transform_points(pose, pts_cam)
        T_ego_from_cam = T_Sc  # the ego vehicle frame is S
        T_pred_S = agents[a] @ rigid(agent_rot_deg, (agent_offset_m, 0, 0)) @ np.linalg.inv(agents[a]) if a else np.eye(4)
        pose_pred = T_world_from_S @ T_pred_S @ T_Sc
        pose_pred[:3, 3] *= scale
        if pred_world is not None:
            pose_pred = pred_world @ pose_pred
        pred_cam = depthmap_to_pts_cam(depth, K) * scale
        views.append({
            "img": torch.zeros(1, 3, H, W), "camera_pose": _t(pose), "camera_intrinsics": _t(K), "depthmap": _t(gt_depth[..., None]),
            "pts3d": _t(pts * valid[..., None]), "pts3d_cam": _t(pts_cam), "valid_mask": _t(valid, torch.bool),
            "agent_index": _t(a, torch.int64), "camera_index": _t(k, torch.int64),
            "T_agent_from_cam": _t(rig(k)), "T_ego_from_cam": _t(T_ego_from_cam),
            "T_egolidar_from_cam": _t(np.linalg.inv(T_EGO_FROM_LIDAR) @ T_ego_from_cam),
            "agent_pose": _t(T_world_from_S @ agents[a]),
            "dense_depthmap": _t(dense[..., None]), "has_dense_depth": _t(i in dense_views, torch.bool),
        })
        preds.append({
            "pts3d": _t(transform_points(pose_pred, pred_cam)), "pts3d_cam": _t(pred_cam),
            "cam_quats": _t(_quat(pose_pred[:3, :3])), "cam_trans": _t(pose_pred[:3, 3]),
            "metric_scaling_factor": _t([scale]), "conf": _t(np.ones((H, W))),
        })
        gt_pts.append(transform_points(np.linalg.inv(T_EGO_FROM_LIDAR) @ T_Sc, pts_cam[valid]))
    _add_boxes(views, T_world_from_S)
    gt_z = torch.cat([v["depthmap"][0, ..., 0][v["valid_mask"][0]].double() for v in views])
    info = {"K": K, "T_world_from_S": T_world_from_S, "T_S_from_cam": np.stack(T_S_from_cam),
            "mean_gt_depth": float(gt_z.mean())}
    return views, preds, np.concatenate(gt_pts), info


def _quat(R: np.ndarray) -> np.ndarray:
    from coopmap.geometry import rotmat_to_quat_xyzw

    return rotmat_to_quat_xyzw(torch.as_tensor(R)).numpy()


def _add_boxes(views, T_world_from_S, boxes=None):
    """Boxes in S (T_S_from_box, half extents); default none. Same for every view, padded with one dummy."""
    boxes = boxes or []
    n = len(boxes)
    pose = np.stack([T_world_from_S @ b[0] for b in boxes] + [np.eye(4)])
    ext = np.stack([np.asarray(b[1], dtype=float) for b in boxes] + [np.ones(3)])
    ids = np.array(list(range(n)) + [-1])
    for v in views:
        v["boxes_pose"], v["boxes_half_extent"] = _t(pose), _t(ext)
        v["boxes_id"], v["boxes_count"] = _t(ids, torch.int64), _t(n, torch.int64)


@pytest.fixture
def sample_builder():
    """The :func:`build_sample` factory."""
    return build_sample


@pytest.fixture
def set_boxes():
    """``set_boxes(views, info, [(T_S_from_box, half_extent), ...])`` replaces a sample's GT boxes."""

    def _set(views, info, boxes):
        _add_boxes(views, info["T_world_from_S"], boxes)

    return _set
