"""One sample's views in MapAnything's format, exactly as docs/views.md specifies.

Frames (all from coopmap.geometry): camera ``T_world_from_cam = camera_pose_rh(cords)``, agent
``agent_frame_rh(lidar_pose, height)`` (the LiDAR frame lowered to the ground, coopmap.data.agent_frame), LiDAR
``sensor_pose_rh(lidar_pose)`` with the ``.pcd`` points flipped by ``points_lh_to_rh``. The sample's world is view 0 (the ego's camera0): every world quantity is multiplied by
``T_v0_from_world = inv(T_world_from_ego_cam0)``. Poses are composed in float64 and stored as float32.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from coopmap.data.agent_frame import lidar_height_above_ground
from coopmap.data.dense_depth import find_dense_depth, read_dense
from coopmap.data.depth_gt import points_to_camera, sparse_depth
from coopmap.data.images import NORM_STATS, normalize_image, read_image
from coopmap.data.index import CAMERAS, ScenarioIndex, is_rsu
from coopmap.data.pcd_io import read_pcd
from coopmap.data.samples import SampleKey
from coopmap.data.shared_poses import SharedPoseOptions, add_shared_pose_keys, shared_corrections
from coopmap.data.transforms import (
    check_resolution,
    plan_resize_crop,
    resize_crop_depth,
    resize_crop_image,
    resize_crop_intrinsics,
    resize_crop_nearest,
)
from coopmap.data.yaml_io import AgentYaml, read_agent_yaml
from coopmap.errors import ConfigError, DataError
from coopmap.geometry import (
    agent_frame_rh,
    box_pose_rh,
    camera_pose_rh,
    depthmap_to_pts_cam,
    first_box_map,
    invert_pose,
    points_lh_to_rh,
    rotmat_to_quat_xyzw,
    sensor_pose_rh,
)

__all__ = ["ViewOptions", "build_views", "BOX_KEYS"]

#: per-sample box tensors, padded along their first dim by the collate function.
BOX_KEYS = ("boxes_pose", "boxes_half_extent", "boxes_id")
#: CARLA cameras have their principal point at the image centre; an image whose size puts it farther than this
#: fraction of the size from the centre does not belong to its intrinsics (e.g. a resized copy).
PRINCIPAL_POINT_TOL = 0.05


@dataclass(frozen=True)
class ViewOptions:
    """What shapes a view: output size (W, H), normalisation, sparse depth source and its visibility test."""

    resolution: tuple[int, int] = (518, 392)
    norm_type: str = "dinov2"
    depth_source: str = "own"
    occlusion_radius: float = 0.1
    occlusion_rel_tol: float = 0.12
    shared_pose: SharedPoseOptions = SharedPoseOptions()
    #: the views' is_synthetic flag (data.is_synthetic): False for sparse LiDAR depth GT
    is_synthetic: bool = False

    @staticmethod
    def from_config(cfg) -> ViewOptions:
        """From a ``DataConfig`` (dataclass or DictConfig); validates resolution and depth_source."""
        if cfg.depth_source not in ("own", "fused"):
            raise ConfigError(f"data.depth_source must be 'own' or 'fused', got {cfg.depth_source!r}")
        if cfg.norm_type not in NORM_STATS:  # checked here, not at the first image (maybe in a loader worker)
            raise ConfigError(f"data.norm_type must be one of {sorted(NORM_STATS)}, got {cfg.norm_type!r}")
        return ViewOptions(check_resolution(cfg.resolution, cfg.patch_size), str(cfg.norm_type),
                           str(cfg.depth_source), float(cfg.occlusion_radius), float(cfg.occlusion_rel_tol),
                           SharedPoseOptions.from_config(getattr(cfg, "shared_pose", None)),
                           is_synthetic=bool(getattr(cfg, "is_synthetic", False)))


@dataclass(frozen=True)
class _Agent:
    """One agent of the sample: yaml, LiDAR points in the right-handed world, and its rigid frames."""

    agent_id: str
    yaml: AgentYaml
    pts_world: np.ndarray  # (N, 3) float64, right-handed world
    T_world_from_agent: np.ndarray
    T_world_from_lidar: np.ndarray


def _load_agent(scen_dir: Path, ts: str, agent_id: str, cameras: tuple[int, ...] = CAMERAS) -> _Agent:
    y = read_agent_yaml(scen_dir / agent_id / f"{ts}.yaml", cameras)
    cloud = read_pcd(scen_dir / agent_id / f"{ts}.pcd", with_intensity=False)
    T_world_from_lidar = sensor_pose_rh(y.lidar_pose)
    pts = points_lh_to_rh(cloud.points.astype(np.float64))
    pts_world = pts @ T_world_from_lidar[:3, :3].T + T_world_from_lidar[:3, 3]
    height, _ = lidar_height_above_ground(y, cloud.points, scen_dir / agent_id / f"{ts}.pcd", is_rsu(agent_id))
    return _Agent(agent_id, y, pts_world, agent_frame_rh(y.lidar_pose, height), T_world_from_lidar)


def _boxes(agents: list[_Agent], T_v0_from_world: np.ndarray) -> dict[str, torch.Tensor]:
    """Union of the vehicles listed by the sample's agents, merged by id (first listing wins)."""
    seen: dict[int, tuple[int, int]] = {}
    for a_i, a in enumerate(agents):
        for row, vid in enumerate(a.yaml.vehicles.ids.tolist()):
            seen.setdefault(vid, (a_i, row))
    ids = sorted(seen)
    if not ids:
        return {"boxes_pose": torch.zeros(0, 4, 4), "boxes_half_extent": torch.zeros(0, 3),
                "boxes_id": torch.zeros(0, dtype=torch.int64), "boxes_count": torch.tensor(0)}
    pick = [seen[i] for i in ids]
    loc = np.stack([agents[a].yaml.vehicles.location[r] for a, r in pick])
    ctr = np.stack([agents[a].yaml.vehicles.center[r] for a, r in pick])
    ang = np.stack([agents[a].yaml.vehicles.angle[r] for a, r in pick])
    ext = np.stack([agents[a].yaml.vehicles.extent[r] for a, r in pick])
    T = T_v0_from_world @ box_pose_rh(loc, ctr, ang)
    return {"boxes_pose": torch.from_numpy(T.astype(np.float32)),
            "boxes_half_extent": torch.from_numpy(ext.astype(np.float32)),
            "boxes_id": torch.tensor(ids, dtype=torch.int64), "boxes_count": torch.tensor(len(ids))}


def _f32(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


@functools.lru_cache(maxsize=16)
def _pixel_rays(K_bytes: bytes, H: int, W: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For intrinsics K (as bytes of a (3, 3) float64): per pixel (x~, y~, 1), the unit ray and |(x~, y~, 1)|.

    Memoised (every camera of OPV2V shares one K); the arrays are read-only.
    """
    K = np.frombuffer(K_bytes, dtype=np.float64).reshape(3, 3)
    xy1 = depthmap_to_pts_cam(np.ones((H, W)), K)
    norm = np.linalg.norm(xy1, axis=-1)
    out = (xy1.astype(np.float32), (xy1 / norm[..., None]).astype(np.float32), norm.astype(np.float32))
    for a in out:
        a.setflags(write=False)
    return out


def _geometry(depth: np.ndarray, K: np.ndarray, camera_pose: np.ndarray) -> dict[str, torch.Tensor]:
    """MapAnything's geometric GT of one view from its sparse z-depth (H, W), K (3, 3), pose (4, 4)."""
    H, W = depth.shape
    valid = np.isfinite(depth) & (depth > 0)
    depth = np.where(valid, depth, 0).astype(np.float32)
    xy1, rays, norm = _pixel_rays(np.ascontiguousarray(K, dtype=np.float64).tobytes(), H, W)
    pts_cam = xy1 * depth[..., None]  # = depthmap_to_pts_cam(depth, K)
    R, t = camera_pose[:3, :3].astype(np.float32), camera_pose[:3, 3].astype(np.float32)
    pts_world = (pts_cam.reshape(-1, 3) @ R.T + t).reshape(H, W, 3)
    pts_world[~valid] = 0
    return {
        "depthmap": _f32(depth[..., None]),
        "pts3d": _f32(pts_world),
        "pts3d_cam": _f32(pts_cam),
        "ray_directions_cam": torch.from_numpy(rays.copy()),
        "depth_along_ray": _f32((depth * norm)[..., None]),
        "valid_mask": torch.from_numpy(valid),
    }


def _view(scen: ScenarioIndex, key: SampleKey, agents: list[_Agent], a_i: int, k: int,
          T_v0_from_world: np.ndarray, opts: ViewOptions) -> dict:
    agent, ego = agents[a_i], agents[0]
    scen_dir = Path(scen.path) / agent.agent_id
    cam = agent.yaml.cameras[k]
    png = scen_dir / f"{key.timestamp}_camera{k}.png"
    rgb = read_image(png)
    H0, W0 = rgb.shape[:2]
    cx, cy = cam.intrinsic[0, 2], cam.intrinsic[1, 2]
    if abs(cx / W0 - 0.5) > PRINCIPAL_POINT_TOL or abs(cy / H0 - 0.5) > PRINCIPAL_POINT_TOL:
        raise DataError(png, f"image is {W0}x{H0} but camera{k}.intrinsic in {Path(agent.yaml.path).name} puts the "
                             f"principal point at ({cx:g}, {cy:g}), i.e. an image of about {2 * cx:.0f}x{2 * cy:.0f} "
                             "(a resized or swapped image?)")
    plan = plan_resize_crop((W0, H0), opts.resolution)
    K = resize_crop_intrinsics(cam.K, plan)
    T_world_from_cam = camera_pose_rh(cam.cords)
    T_cam_from_world = np.linalg.inv(T_world_from_cam)
    sources = agents if opts.depth_source == "fused" else [agent]
    depth = sparse_depth([points_to_camera(T_cam_from_world, s.pts_world) for s in sources], K, opts.resolution,
                         opts.occlusion_radius if opts.depth_source == "fused" else 0.0, opts.occlusion_rel_tol)
    camera_pose = T_v0_from_world @ T_world_from_cam
    # dense depth GT where the tree has it: a synthetic .npy (exact) or HEAL's OPV2V-H depth PNG (whole metres)
    dense_path = find_dense_depth(Path(scen.path).parent.parent, scen_dir, key.timestamp, k, scen.synthetic)
    has_dense = dense_path is not None
    W, H = opts.resolution
    dense = np.zeros((H, W), np.float32)
    if dense_path is not None:
        native, exact = read_dense(dense_path, (W0, H0))
        dense = resize_crop_depth(native, plan) if exact else resize_crop_nearest(native, plan)
    pose_t = torch.from_numpy(camera_pose)
    quat, trans = rotmat_to_quat_xyzw(pose_t[:3, :3]), pose_t[:3, 3]
    view = {
        "img": normalize_image(resize_crop_image(rgb, plan), opts.norm_type),
        "data_norm_type": opts.norm_type,
        "camera_pose": _f32(camera_pose),
        "camera_intrinsics": _f32(K),
        "camera_pose_quats": quat.float(),
        "camera_pose_trans": trans.float(),
        **_geometry(depth, K, camera_pose),
        "non_ambiguous_mask": torch.from_numpy(dense > 0) if has_dense else torch.ones(H, W, dtype=torch.bool),
        "is_metric_scale": torch.tensor(True),
        "is_synthetic": torch.tensor(opts.is_synthetic),  # sparse LiDAR GT: not "synthetic" in MapAnything's sense
        "dataset": "opv2v",
        "label": key.scenario,
        "instance": f"{key.scenario}/{key.timestamp}/{agent.agent_id}/camera{k}",
        "true_shape": torch.tensor([H, W], dtype=torch.int32),
        "agent_index": torch.tensor(a_i, dtype=torch.int64),
        "agent_id": torch.tensor(int(agent.agent_id), dtype=torch.int64),
        "camera_index": torch.tensor(k, dtype=torch.int64),
        "timestamp": torch.tensor(int(key.timestamp), dtype=torch.int64),
        "T_agent_from_cam": _f32(np.linalg.inv(agent.T_world_from_agent) @ T_world_from_cam),
        "T_ego_from_cam": _f32(np.linalg.inv(ego.T_world_from_agent) @ T_world_from_cam),
        "T_egolidar_from_cam": _f32(np.linalg.inv(ego.T_world_from_lidar) @ T_world_from_cam),
        "agent_pose": _f32(T_v0_from_world @ agent.T_world_from_agent),
        "dense_depthmap": _f32(dense[..., None]),
        "has_dense_depth": torch.tensor(bool(has_dense)),
    }
    return view


def build_views(scen: ScenarioIndex, key: SampleKey, opts: ViewOptions, idx: int = 0) -> list[dict]:
    """The V = key.n_views view dicts of a sample (each agent's cameras, usually 4; unbatched: no leading B dim).

    Per-view tensors carry no batch dimension (``img`` (3, H, W), ``depthmap`` (H, W, 1), scalars 0-dim);
    :func:`coopmap.data.dataset.collate_views` stacks them. String keys are plain str (lists after collate).

    Raises:
        DataError: any file of the sample is missing or malformed (naming it).
    """
    scen_dir = Path(scen.path)
    agents = [_load_agent(scen_dir, key.timestamp, a, key.agent_cameras(i)) for i, a in enumerate(key.agent_ids)]
    # the sample's world: the ego's first camera (camera0 unless the ego has no camera0)
    T_v0_from_world = np.linalg.inv(camera_pose_rh(agents[0].yaml.cameras[key.agent_cameras(0)[0]].cords))
    boxes = _boxes(agents, T_v0_from_world)
    T_box_from_v0 = invert_pose(boxes["boxes_pose"])
    views = []
    for a_i in range(len(agents)):
        for k in key.agent_cameras(a_i):
            view = _view(scen, key, agents, a_i, k, T_v0_from_world, opts)
            view["idx"] = torch.tensor(idx, dtype=torch.int64)
            view.update(boxes)
            # the first GT box holding each labelled pixel's point, for the box-consistency loss: computed once
            # here (in the loading workers) instead of at every training step
            view["box_index"] = first_box_map(view["pts3d"], view["valid_mask"], T_box_from_v0,
                                              boxes["boxes_half_extent"])
            views.append(view)
    # the poses the agents share (V2X), docs/data.md "Shared poses": shared_* keys
    corrections = shared_corrections(opts.shared_pose, key.scenario, key.timestamp, key.agent_ids,
                                     [a.T_world_from_agent for a in agents], [a.yaml for a in agents], T_v0_from_world)
    add_shared_pose_keys(views, corrections, opts.shared_pose)
    return views
