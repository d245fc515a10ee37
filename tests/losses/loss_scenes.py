"""Hand-made cooperative scenes for the loss tests: consistent GT views and 'perfect' predictions.

Agents stand on a flat ground (vehicle frames x forward, y left, z up, origin on the ground); each has ``n_cams``
cameras on a rig; the sample's world frame is the ego's camera0 (docs/views.md). ``perfect_preds`` returns the
predictions a flawless model would make, optionally expressed in another predicted world frame.
"""

from __future__ import annotations

import math

import torch

from coopmap.geometry import depthmap_to_pts_cam, pose_to_quat_trans, ray_directions, transform_points

# OpenCV camera axes -> vehicle axes (camera looking forward): cv z -> x, cv x -> -y, cv y -> -z.
R_VEH_FROM_CV = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rot_z(angle: float, dtype=torch.float64) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)


def rot_x(angle: float, dtype=torch.float64) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=dtype)


def make_pose(R: torch.Tensor, t) -> torch.Tensor:
    T = torch.eye(4, dtype=R.dtype)
    T[:3, :3] = R
    T[:3, 3] = torch.as_tensor(t, dtype=R.dtype)
    return T


def rig(n_cams: int, dtype=torch.float64) -> list[torch.Tensor]:
    """T_agent_from_cam of each camera: yaw 0, 100, -100, 180 degrees; mounts ~ OPV2V's."""
    yaws = [0.0, 100.0, -100.0, 180.0][:n_cams]
    mounts = [(2.5, 0.0, 1.0), (0.0, -0.3, 1.8), (0.0, 0.3, 1.8), (-2.0, 0.0, 1.5)][:n_cams]
    return [make_pose(rot_z(math.radians(y), dtype) @ R_VEH_FROM_CV.to(dtype), m) for y, m in zip(yaws, mounts)]


def random_rigid(gen: torch.Generator, dtype=torch.float64, scale: float = 5.0) -> torch.Tensor:
    """A random rigid transform (rotation from a random quaternion, translation ~ N(0, scale))."""
    q = torch.randn(4, generator=gen, dtype=dtype)
    q = q / q.norm()
    x, y, z, w = q.tolist()
    R = torch.tensor([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]], dtype=dtype)
    return make_pose(R, torch.randn(3, generator=gen, dtype=dtype) * scale)


def _sample(n_agents, n_cams, H, W, coverage, gen, dtype):
    """One sample: list of per-view dicts without the batch dimension."""
    agents = [make_pose(rot_z(0.0, dtype), (0.0, 0.0, 0.0))]
    for _ in range(1, n_agents):
        yaw = float(torch.rand(1, generator=gen)) * 2 * math.pi
        xy = (torch.rand(2, generator=gen, dtype=dtype) - 0.5) * 60
        agents.append(make_pose(rot_z(yaw, dtype), (float(xy[0]), float(xy[1]), 0.0)))
    cams = rig(n_cams, dtype)
    W_from_ref = agents[0] @ cams[0]
    ref_from_W = torch.linalg.inv(W_from_ref)
    K = torch.tensor([[W / 2.0, 0, (W - 1) / 2.0], [0, W / 2.0, (H - 1) / 2.0], [0, 0, 1]], dtype=dtype)
    out = []
    for a in range(n_agents):
        for c in range(n_cams):
            depth = 2.0 + 28.0 * torch.rand(H, W, generator=gen, dtype=dtype)
            valid = torch.rand(H, W, generator=gen) < coverage
            depth = depth * valid
            pts_cam = depthmap_to_pts_cam(depth, K)
            cam_pose = ref_from_W @ agents[a] @ cams[c]
            pts = transform_points(cam_pose, pts_cam.reshape(-1, 3)).reshape(H, W, 3) * valid[..., None]
            quat, trans = pose_to_quat_trans(cam_pose)
            out.append({
                "camera_pose": cam_pose, "camera_pose_quats": quat, "camera_pose_trans": trans,
                "camera_intrinsics": K, "depthmap": depth[..., None], "pts3d": pts, "pts3d_cam": pts_cam,
                "ray_directions_cam": ray_directions(K, H, W), "depth_along_ray": pts_cam.norm(dim=-1, keepdim=True),
                "valid_mask": valid, "non_ambiguous_mask": torch.ones(H, W, dtype=torch.bool),
                "is_metric_scale": torch.tensor(True), "agent_index": torch.tensor(a),
                "camera_index": torch.tensor(c), "T_agent_from_cam": cams[c],
                "T_ego_from_cam": torch.linalg.inv(agents[0]) @ agents[a] @ cams[c],
                "agent_pose": ref_from_W @ agents[a],
            })
    return out


def _add_boxes(views, gen, n_boxes: int, n_pad: int):
    """Boxes centred on labelled GT points (so some LiDAR returns fall inside), plus padding slots."""
    B, dtype = views[0]["pts3d"].shape[0], views[0]["pts3d"].dtype
    poses = torch.eye(4, dtype=dtype).repeat(B, n_boxes + n_pad, 1, 1)
    half = torch.ones(B, n_boxes + n_pad, 3, dtype=dtype)
    for b in range(B):
        pts = torch.cat([v["pts3d"][b][v["valid_mask"][b]] for v in views])
        pick = torch.randperm(pts.shape[0], generator=gen)[:n_boxes]
        for k, i in enumerate(pick.tolist()):
            R = rot_z(float(torch.rand(1, generator=gen)) * 3.0, dtype)
            poses[b, k] = make_pose(R, pts[i] + 0.3 * torch.randn(3, generator=gen, dtype=dtype))
            half[b, k] = torch.tensor([2.3, 1.0, 0.8], dtype=dtype)
    ids = torch.arange(n_boxes + n_pad).repeat(B, 1)
    ids[:, n_boxes:] = -1
    for v in views:
        v.update(boxes_pose=poses, boxes_half_extent=half, boxes_id=ids,
                 boxes_count=torch.full((B,), n_boxes, dtype=torch.long))


def make_views(n_agents=2, n_cams=2, B=1, H=4, W=5, coverage=0.5, seed=0, dtype=torch.float64, n_boxes=2):
    """V = n_agents * n_cams batch views (B, ...) with every key the losses read (docs/views.md)."""
    gen = torch.Generator().manual_seed(seed)
    samples = [_sample(n_agents, n_cams, H, W, coverage, gen, dtype) for _ in range(B)]
    views = [{k: torch.stack([s[v][k] for s in samples]) for k in samples[0][v]} for v in range(len(samples[0]))]
    _add_boxes(views, gen, n_boxes, n_pad=1)
    return views


def perfect_preds(views, G: torch.Tensor | None = None, scale: float = 1.0, requires_grad: bool = False):
    """Flawless predictions; ``G`` (4, 4) re-expresses them in another predicted world frame; ``scale``
    multiplies every metric quantity (and the scaling factor)."""
    G = torch.eye(4, dtype=views[0]["pts3d"].dtype) if G is None else G
    preds = []
    for v in views:
        pose = G @ v["camera_pose"]
        # unlabelled pixels stay at the (predicted) view-0 origin, the naive target
        pts = transform_points(G, v["pts3d"].flatten(1, 2)).reshape(v["pts3d"].shape)
        quat, trans = pose_to_quat_trans(pose)
        p = {
            "pts3d": pts * scale, "pts3d_cam": v["pts3d_cam"] * scale, "depth_along_ray": v["depth_along_ray"] * scale,
            "ray_directions": v["ray_directions_cam"].clone(), "cam_quats": quat, "cam_trans": trans * scale,
            "metric_scaling_factor": torch.full_like(trans[:, :1], scale),
        }
        preds.append({k: x.clone().requires_grad_(requires_grad) for k, x in p.items()})
    return preds


def add_teacher(views, preds):
    """Put the predictions' poses, s and metric scene scale into the views as the teacher targets (detached)."""
    from coopmap.losses.distill import view_scene_scale

    for v, p in zip(views, preds):
        v["teacher_cam_quats"] = p["cam_quats"].detach().clone()
        v["teacher_cam_trans"] = p["cam_trans"].detach().clone()
        v["teacher_metric_scale"] = p["metric_scaling_factor"].detach().clone()
        v["teacher_scene_scale"] = view_scene_scale(v, p).detach().clone()
    return views
