"""``generate``: write synthetic scenarios in OPV2V's on-disk format, with dense depth ground truth.

Randomness: every scenario draws from ``default_rng([seed, crc32(split), scenario])`` and every (frame, agent)
sensor pass from ``default_rng([seed, crc32(split), scenario, frame, agent])``; nothing depends on time or
on the order of work, so the same arguments write byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from coopmap.errors import DataError
from coopmap.geometry import (
    carla_intrinsics,
    lidar_points_to_camera_cv,
    lidar_to_camera_ue,
    opv2v_intrinsics,
    project,
)
from coopmap.synth.boxes import Boxes
from coopmap.synth.camera import render_camera
from coopmap.synth.config import (
    CAMERA_FOV_DEG,
    CAMERA_MOUNTS,
    FRAME_STEP,
    LIDAR_MOUNT,
    SIM_DT,
    LidarSpec,
    SynthConfig,
)
from coopmap.synth.lidar import sweep
from coopmap.synth.poses import mount_pose
from coopmap.synth.scene import Scene, build_scene
from coopmap.synth.traffic import Traffic, build_traffic, plan_convoy, vehicle_entry
from coopmap.synth.writer import data_protocol, write_depth, write_depth_png, write_pcd, write_png, write_yaml

#: GNSS-like noise of ``predicted_ego_pos``: metres (x, y, z) and degrees (yaw).
GNSS_SIGMA = (0.25, 0.25, 0.05, 0.5)
PLAN_STEPS, PLAN_DT = 10, 0.5


def generate(out, split: str = "train", scenarios: int = 1, agents: int = 3, frames: int = 4, seed: int = 0,
             image_size=(800, 600), pcd_format: str = "ascii", lidar_noise: bool = True,
             progress: bool = True, depth_png: bool = False) -> dict:
    """Write ``out/<split>/<scenario>/...`` (see docs/synth.md) and return a summary.

    Returns:
        dict with ``root`` (the split folder), ``scenarios`` (folder names), ``cav_ids`` (per scenario),
        ``timestamps`` (per scenario), ``files``, ``images``, ``points_per_sweep`` and ``sparse_coverage``
        (fraction of pixels with a LiDAR return, own agent) as (mean, min, max), and ``seconds``.
    """
    cfg = SynthConfig(str(out), split, scenarios, agents, frames, seed, tuple(image_size), pcd_format,
                      lidar_noise, progress, depth_png).validate()
    start = time.perf_counter()
    root = Path(cfg.out) / cfg.split
    names = scenario_names(cfg.seed, cfg.split, cfg.scenarios)
    stats: dict[str, list] = {"points": [], "coverage": [], "files": [], "cav_ids": [], "timestamps": []}
    total = cfg.scenarios * cfg.frames * cfg.agents
    with tqdm(total=total, desc="synth", unit="view", delay=1.0, disable=not cfg.progress) as bar:
        for index, name in enumerate(names):
            _write_scenario(cfg, index, root / name, stats, bar)
    return {
        "root": str(root),
        "split": cfg.split,
        "scenarios": names,
        "cav_ids": stats["cav_ids"],
        "timestamps": stats["timestamps"],
        "agents": cfg.agents,
        "frames": cfg.frames,
        "files": int(sum(stats["files"])),
        "images": cfg.scenarios * cfg.frames * cfg.agents * len(CAMERA_MOUNTS),
        "points_per_sweep": _mmm(stats["points"]),
        "sparse_coverage": _mmm(stats["coverage"]),
        "seconds": time.perf_counter() - start,
    }


def scenario_names(seed: int, split: str, count: int) -> list[str]:
    """Distinct ``YYYY_MM_DD_HH_MM_SS`` folder names, increasing in time."""
    rng = np.random.default_rng([seed, zlib.crc32(split.encode()), 0xDA7E])
    when = dt.datetime(2021, 8, 16, 8, 0, 0) + dt.timedelta(seconds=int(rng.integers(0, 90 * 86400)))
    names = []
    for _ in range(count):
        names.append(when.strftime("%Y_%m_%d_%H_%M_%S"))
        when += dt.timedelta(seconds=int(rng.integers(600, 7200)))
    return names


def _fresh_folder(folder: Path) -> None:
    """Create an empty scenario folder; an existing one is replaced only if ``coopmap synth`` wrote it."""
    if folder.exists():
        protocol = folder / "data_protocol.yaml"
        if not (protocol.is_file() and "\nsynthetic:\n" in protocol.read_text(encoding="utf-8", errors="replace")):
            raise DataError(folder, "exists and was not written by coopmap synth; choose another --out or --split")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _mmm(values) -> tuple[float, float, float]:
    if not values:
        return (0.0, 0.0, 0.0)
    v = np.asarray(values, dtype=np.float64)
    return (float(v.mean()), float(v.min()), float(v.max()))


def _write_scenario(cfg: SynthConfig, index: int, folder: Path, stats: dict, bar) -> None:
    split_key = zlib.crc32(cfg.split.encode())
    rng = np.random.default_rng([cfg.seed, split_key, index])
    scene, traffic = build_world(rng, cfg.agents, cfg.frames)
    frame_dt = FRAME_STEP * SIM_DT
    first = FRAME_STEP * int(rng.integers(30, 200))
    spec = LidarSpec()
    _fresh_folder(folder)
    write_yaml(folder / "data_protocol.yaml",
               data_protocol(spec, cfg.image_size, cfg.seed, int(rng.integers(0, 2**31 - 1)), cfg.frames))
    cav_ids = [int(i) for i in traffic.actor_id[: traffic.n_cavs]]
    timestamps = [f"{first + f * FRAME_STEP:06d}" for f in range(cfg.frames)]
    stats["cav_ids"].append(cav_ids)
    stats["timestamps"].append(timestamps)
    stats["files"].append(1)
    for f, stamp in enumerate(timestamps):
        t = f * frame_dt
        poses, boxes = frame_boxes(scene, traffic, t)
        for a, cav in enumerate(cav_ids):
            agent_rng = np.random.default_rng([cfg.seed, split_key, index, f, a])
            agent_dir = folder / str(cav)
            agent_dir.mkdir(exist_ok=True)
            _write_agent_frame(cfg, scene, traffic, boxes, poses, t, a, agent_dir / stamp, agent_rng, stats, spec)
            bar.update(1)


def build_world(rng: np.random.Generator, agents: int, frames: int) -> tuple[Scene, Traffic]:
    """A scenario's static world and its traffic (the first ``agents`` vehicles are the CAVs)."""
    convoy_x, speed = plan_convoy(rng, agents)
    duration = (frames - 1) * FRAME_STEP * SIM_DT
    scene = build_scene(rng, float(convoy_x.min()), float(convoy_x.max() + speed * duration))
    return scene, build_traffic(rng, convoy_x, speed, duration, scene.cross_x)


def frame_boxes(scene: Scene, traffic: Traffic, t: float) -> tuple[np.ndarray, Boxes]:
    """Vehicle poses (N, 6) at time ``t`` and every box of the world then (vehicle k is box ``-N + k``)."""
    poses = traffic.poses(scene.frame, t)
    return poses, Boxes.concat(scene.static, traffic.boxes(poses))


def _write_agent_frame(cfg, scene: Scene, traffic: Traffic, boxes: Boxes, poses, t: float, a: int, stem: Path,
                       rng: np.random.Generator, stats: dict, spec: LidarSpec) -> None:
    """Render and write one agent's sensors at one timestamp (yaml, pcd, 4 png, 4 npy)."""
    own = len(boxes) - len(traffic) + a
    seen = boxes.select(np.arange(len(boxes)) != own)  # a vehicle's sensors do not see its own body
    pose = poses[a]
    lidar_pose = mount_pose(pose, LIDAR_MOUNT)
    cloud = sweep(scene, seen, lidar_pose, spec, rng, noise=cfg.lidar_noise)
    width, height = cfg.image_size
    # rendered as CARLA does (optical axis through the image's geometric centre: our K, pixel centres at
    # integers, cx = (W - 1) / 2); the yaml gets K as CARLA writes it (cx = W / 2), see docs/conventions.md
    K = opv2v_intrinsics(width, height, CAMERA_FOV_DEG)
    K_yaml = carla_intrinsics(width, height, CAMERA_FOV_DEG)
    meta: dict = {}
    for k, mount in enumerate(CAMERA_MOUNTS):
        cords = mount_pose(pose, mount)
        rgb, hits = render_camera(scene, seen, cords, K, width, height)
        write_png(f"{stem}_camera{k}.png", rgb)
        write_depth(f"{stem}_depth{k}.npy", hits.depth)
        if cfg.depth_png:
            write_depth_png(f"{stem}_depth{k}.png", hits.depth)
        meta[f"camera{k}"] = {
            "cords": _floats(cords),
            "extrinsic": _floats(lidar_to_camera_ue(cords, lidar_pose)),
            "intrinsic": _floats(K_yaml),
        }
        stats["coverage"].append(sparse_coverage(cloud.points, cords, lidar_pose, K, width, height))
    hit_ids = set(seen.actor_id[cloud.surface[cloud.surface >= 0]].tolist()) - {-1}
    meta.update(_ego_entries(traffic, scene, pose, lidar_pose, t, a, rng))
    meta["vehicles"] = {
        int(traffic.actor_id[v]): vehicle_entry(poses[v], traffic.half[v], traffic.speed[v])
        for v in range(len(traffic)) if int(traffic.actor_id[v]) in hit_ids
    }
    write_yaml(f"{stem}.yaml", meta)
    write_pcd(f"{stem}.pcd", cloud.points, cloud.intensity, cfg.pcd_format)
    stats["points"].append(len(cloud.points))
    stats["files"].append(2 + (3 if cfg.depth_png else 2) * len(CAMERA_MOUNTS))


def _ego_entries(traffic: Traffic, scene: Scene, pose, lidar_pose, t: float, a: int, rng) -> dict:
    """lidar_pose, true/predicted ego pose, ego_speed (km/h) and plan_trajectory ([x, y, km/h])."""
    gnss = rng.normal(0.0, 1.0, 4) * np.array(GNSS_SIGMA)
    predicted = np.array(pose, dtype=np.float64)
    predicted[:3] += gnss[:3]
    predicted[4] += gnss[3]  # not re-wrapped, as in OPV2V's files
    kmh = float(traffic.speed[a] * 3.6)
    plan = [traffic.poses(scene.frame, t + PLAN_DT * (k + 1))[a] for k in range(PLAN_STEPS)]
    return {
        "lidar_pose": _floats(lidar_pose),
        "true_ego_pos": _floats(pose),
        "predicted_ego_pos": _floats(predicted),
        "ego_speed": kmh,
        "plan_trajectory": [[float(p[0]), float(p[1]), kmh] for p in plan],
    }


def sparse_coverage(points, cords, lidar_pose, K, width: int, height: int) -> float:
    """Fraction of a camera's pixels hit by at least one LiDAR point (nearest pixel, z > 0); K: ours (pixel
    centres at integers, :func:`coopmap.geometry.opv2v_intrinsics`)."""
    pts_cam = lidar_points_to_camera_cv(points, cords, lidar_pose)
    uv, z = project(pts_cam, K)
    col, row = np.round(uv[:, 0]), np.round(uv[:, 1])
    ok = (z > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    pixels = np.unique(row[ok].astype(np.int64) * width + col[ok].astype(np.int64))
    return pixels.size / float(width * height)


def _floats(x) -> list:
    """Nested Python floats (YAML-safe) from an array."""
    return np.asarray(x, dtype=np.float64).tolist()
