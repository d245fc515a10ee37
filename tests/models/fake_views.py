"""Batch views exactly per docs/views.md from a small analytic scene (test helper, no dataset needed).

Scene, in a right-handed map frame (z up, ground plane z = 0): n_agents vehicles, each with 4 cameras at 1.6 m
(camera k yawed by 0, -90, 180, +90 degrees: front, right, back, left), and a few yawed boxes. Dense depth is ray
cast against the ground and the boxes (sky beyond 80 m = 0); the sparse "LiDAR" depth keeps a seeded random 35% of
the dense pixels closer than 60 m. The sample world frame is the ego's camera0 (OpenCV axes), as the reader makes it.
"""

from __future__ import annotations

import numpy as np
import torch

from coopmap.geometry import opv2v_intrinsics, scale_intrinsics

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
R_AGENT_FROM_CV = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # cv x right, y down, z fwd
CAMERA_YAWS = (0.0, -90.0, 180.0, 90.0)
BOXES = [  # centre (x, y, z), yaw deg, half extent
    ((9.0, -3.0, 0.8), 10.0, (2.2, 1.0, 0.8)),
    ((-7.0, 3.5, 0.9), -20.0, (2.4, 1.1, 0.9)),
    ((3.0, 8.0, 0.8), 80.0, (2.0, 0.9, 0.8)),
    ((1.0, -9.0, 1.2), 45.0, (1.5, 1.5, 1.2)),
]


def _pose(x, y, z, yaw_deg, R_local=np.eye(3)):
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    T = np.eye(4)
    T[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R_local
    T[:3, 3] = (x, y, z)
    return T


def _agent_poses(n_agents, b, seed):
    rng = np.random.default_rng(1000 * seed + b)
    poses = [_pose(*rng.normal(0, 0.5, 2), 0.0, rng.normal(0, 5))]
    for a in range(1, n_agents):
        ang = np.radians(60.0 * a + rng.normal(0, 5))
        poses.append(_pose(14 * np.cos(ang), 14 * np.sin(ang), 0.0, 30.0 * a + rng.normal(0, 5)))
    return poses


def _ray_cast(T_map_cam, K, H, W):
    """Dense z-depth (H, W) (0 = sky) and hit labels (-1 sky, 0 ground, 1+ box) of one camera."""
    v, u = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    d = d_cam @ T_map_cam[:3, :3].T
    o = T_map_cam[:3, 3]
    t_best = np.full((H, W), np.inf)
    label = np.full((H, W), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(d[..., 2] < 0, -o[2] / d[..., 2], np.inf)
    hit = t_ground < t_best
    t_best[hit], label[hit] = t_ground[hit], 0
    for k, (centre, yaw, half) in enumerate(BOXES):
        T_box = _pose(*centre, yaw)
        R, c = T_box[:3, :3], T_box[:3, 3]
        o_b, d_b = (o - c) @ R, d @ R
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-np.array(half) - o_b) / d_b, (np.array(half) - o_b) / d_b
        t_near = np.nanmax(np.minimum(t1, t2), -1)
        t_far = np.nanmin(np.maximum(t1, t2), -1)
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < t_best)
        t_best[hit], label[hit] = t_near[hit], k + 1
    depth = np.where(t_best < 80.0, t_best, 0.0)
    return depth, np.where(depth > 0, label, -1), o[None, None] + d * depth[..., None]


def _image(label, pts_map, depth):
    rgb = np.zeros(label.shape + (3,))
    checker = ((np.floor(pts_map[..., 0] / 2) + np.floor(pts_map[..., 1] / 2)) % 2)[..., None]
    rgb[label == 0] = (0.35 + 0.35 * checker[label == 0]) * np.array([0.9, 0.8, 0.7])
    for k in range(1, len(BOXES) + 1):
        rgb[label == k] = np.array([0.2 + 0.15 * k, 0.8 - 0.15 * k, 0.3 + 0.1 * k])
    rgb[label < 0] = np.array([0.5, 0.7, 0.95])
    rgb *= np.where(depth > 0, np.exp(-depth / 120.0), 1.0)[..., None]
    return ((rgb - MEAN) / STD).transpose(2, 0, 1)


def make_views(mode="coop", batch=1, height=42, width=56, n_agents=2, seed=0, has_dense=True):
    """Build a sample's V views (V = 4 single, 4 * n_agents coop), batch size ``batch``, as torch tensors."""
    n = 1 if mode == "single" else n_agents
    K = scale_intrinsics(opv2v_intrinsics(800, 600), width / 800, height / 600)
    rigs = [_pose(0.0, 0.0, 1.6, yaw, R_AGENT_FROM_CV) for yaw in CAMERA_YAWS]
    T_lidar = _pose(0.0, 0.0, 1.9, 0.0)
    per_view = [[] for _ in range(4 * n)]
    for b in range(batch):
        agents = _agent_poses(n, b, seed)
        T_w_from_map = np.linalg.inv(agents[0] @ rigs[0])  # world = the ego's camera0
        rng = np.random.default_rng(seed * 7919 + b)
        boxes_pose = np.stack([T_w_from_map @ _pose(*c, y) for c, y, _ in BOXES])
        for a in range(n):
            for k in range(4):
                per_view[4 * a + k].append(_view_b(a, k, b, agents, rigs, T_lidar, T_w_from_map, K, height, width,
                                                   rng, boxes_pose, seed, has_dense))
    return [_collate(items, mode, seed) for items in per_view]


def _view_b(a, k, b, agents, rigs, T_lidar, T_w_from_map, K, H, W, rng, boxes_pose, seed, has_dense):
    T_map_cam = agents[a] @ rigs[k]
    dense, label, pts_map = _ray_cast(T_map_cam, K, H, W)
    valid = (dense > 0) & (dense < 60.0) & (rng.random(dense.shape) < 0.35)
    depth = np.where(valid, dense, 0.0)
    v, u = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")
    pts_cam = np.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], -1)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    pose = T_w_from_map @ T_map_cam
    pts3d = np.where(valid[..., None], pts_cam @ pose[:3, :3].T + pose[:3, 3], 0.0)
    T_ego_from_cam = np.linalg.inv(agents[0]) @ T_map_cam
    q = _quat_xyzw(pose[:3, :3])
    agent_id = 641 + 10 * a
    return {
        "img": _image(label, pts_map, dense), "camera_pose": pose, "camera_intrinsics": K,
        "camera_pose_quats": q, "camera_pose_trans": pose[:3, 3], "depthmap": depth[..., None], "pts3d": pts3d,
        "pts3d_cam": pts_cam, "ray_directions_cam": rays, "depth_along_ray": np.linalg.norm(pts_cam, axis=-1)[..., None],
        "valid_mask": valid, "non_ambiguous_mask": (dense > 0) if has_dense else np.ones_like(valid),
        "is_metric_scale": True, "is_synthetic": True, "instance": f"scene_{seed}/{68 + 2 * b:06d}/{agent_id}/camera{k}",
        "label": f"scene_{seed}", "idx": b, "true_shape": np.array([H, W], dtype=np.int32), "agent_index": a,
        "agent_id": agent_id, "camera_index": k, "timestamp": 68 + 2 * b, "T_agent_from_cam": rigs[k],
        "T_ego_from_cam": T_ego_from_cam, "T_egolidar_from_cam": np.linalg.inv(T_lidar) @ T_ego_from_cam,
        "agent_pose": T_w_from_map @ agents[a], "boxes_pose": boxes_pose,
        "boxes_half_extent": np.array([h for _, _, h in BOXES]), "boxes_id": np.arange(len(BOXES)) + 2000,
        "boxes_count": len(BOXES), "dense_depthmap": (dense if has_dense else np.zeros_like(dense))[..., None],
        "has_dense_depth": has_dense,
        # perfect sharing (docs/views.md shared_*): tests noise them with fake_views.noisy_shared_poses
        "shared_agent_pose": T_w_from_map @ agents[a], "shared_camera_pose": pose, "shared_camera_pose_quats": q,
        "shared_camera_pose_trans": pose[:3, 3], "shared_pose_sigma": np.zeros(2),
    }


def _quat_xyzw(R):
    import roma

    return roma.rotmat_to_unitquat(torch.as_tensor(R)).numpy()


_INT = {"idx", "agent_index", "agent_id", "camera_index", "timestamp", "boxes_id", "boxes_count"}
_BOOL = {"valid_mask", "non_ambiguous_mask", "is_metric_scale", "is_synthetic", "has_dense_depth"}
_STR = {"instance", "label"}


def _collate(items, mode, seed):
    view = {"data_norm_type": ["dinov2"] * len(items), "dataset": ["opv2v"] * len(items)}
    for key in items[0]:
        vals = [it[key] for it in items]
        if key in _STR:
            view[key] = vals
        elif key == "true_shape":
            view[key] = torch.as_tensor(np.stack(vals), dtype=torch.int32)
        elif key in _INT:
            view[key] = torch.as_tensor(np.stack(vals), dtype=torch.int64)
        elif key in _BOOL:
            view[key] = torch.as_tensor(np.stack(vals), dtype=torch.bool)
        else:
            view[key] = torch.as_tensor(np.stack(vals), dtype=torch.float32)
    return view


def noisy_shared_poses(views, offsets):
    """Copies of batch views whose shared poses of agent a are moved by ``offsets[a]`` (a (4, 4) numpy transform
    in the view-0 frame, applied on the left: ``shared = M_a @ GT``); agents without an offset keep the GT."""
    from coopmap.geometry import rotmat_to_quat_xyzw

    out = []
    for view in views:
        a = int(view["agent_index"][0])
        view = dict(view)
        if a in offsets:
            M = torch.as_tensor(offsets[a], dtype=torch.float64)
            cam = M @ view["camera_pose"].double()
            view["shared_agent_pose"] = (M @ view["agent_pose"].double()).float()
            view["shared_camera_pose"] = cam.float()
            view["shared_camera_pose_quats"] = rotmat_to_quat_xyzw(cam[:, :3, :3]).float()
            view["shared_camera_pose_trans"] = cam[:, :3, 3].float()
        out.append(view)
    return out
