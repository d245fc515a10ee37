"""Benchmark: `coopmap filter` on one frame of ~1M predicted points with K = 5 history frames, against evaluating it.

    python benchmarks/bench_filter.py [--points 1000000] [--gt 300000] [--frames 5] [--repeat 2] [--icp]

Scene: a street (ground, facades up to 12 m on both sides, 30 parked or driving cars) seen by 8 pinhole cameras
(the ego's 4 and those of a vehicle 15 m ahead, 518 x 392, 100 deg field of view) from 6 ego positions 1 m apart
(10 Hz at 36 km/h). Every camera ray's first hit is a predicted point with 1 % depth noise; 3 % of them are
replaced by floaters (anywhere in the range box, up to 15 m high); the cloud is then sampled to ``--points``. The
GT is ``--gt`` points of an independent noise-free sampling. Sky rays give no point (MapAnything predicts far
points there: the range crop removes them in linear time, so they are left out here).

Timed, best of ``--repeat``:
- evaluate: what `coopmap eval` computes on the cloud (``coopmap.filtering.scoring.cloud_scores``: Chamfer and
  F-score against the GT, BEV IoU, floating ratio, vehicle recall);
- filter, streaming: filters 1-5 of the current frame + multi-frame support against the 5 cached history clouds
  (what ``run_filter`` does per frame: each frame's single-frame result is computed once and cached);
- filter, cold: filters 1-5 of all 6 frames + support (no cache: the first frame after a resume, say);
- with ``--icp``: one ICP link (pose pred; ``run_filter`` estimates one per new frame).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from coopmap.filtering import FilterConfig
from coopmap.filtering.motion import estimate_motion, gt_motion
from coopmap.filtering.pipeline import HistoryFrame, apply_support, single_frame_filter
from coopmap.filtering.scoring import cloud_scores
from timing import best_time  # benchmarks/timing.py (the script's folder is on sys.path)

T_EGO_FROM_LIDAR = np.array([[1, 0, 0, -0.5], [0, 1, 0, 0], [0, 0, 1, 1.9], [0, 0, 0, 1.0]])
MOUNTS = [((2.5, 0.0, 1.0), 0.0), ((0.0, -0.3, 1.8), -100.0), ((0.0, 0.3, 1.8), 100.0), ((-2.0, 0.0, 1.5), 180.0)]


def _cars(rng, n=30):
    """(n, 3) centres and (n, 3) half extents of axis-aligned cars on the road (y in +-6 m), world frame."""
    centre = np.c_[rng.uniform(-60, 80, n), rng.choice([-6.0, -2.5, 2.5, 6.0], n), np.full(n, 0.75)]
    centre = centre[np.abs(centre[:, 0] - 5) > 8]  # keep clear of the ego and the leading vehicle
    return centre, np.tile([2.3, 1.0, 0.75], (len(centre), 1))


def _rays(width=518, height=392, fov_deg=100.0):
    """(H W, 3) unit ray directions of a camera looking along +x (x forward, y left, z up), pitched 5 deg down."""
    f = (width / 2) / math.tan(math.radians(fov_deg / 2))
    u, v = np.meshgrid(np.arange(width) - (width - 1) / 2, np.arange(height) - (height - 1) / 2)
    d = np.stack([np.full(u.size, f), -u.ravel(), -v.ravel()], axis=1)
    p = math.radians(5.0)
    d = d @ np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]]).T
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _first_hit(origin, dirs, cars):
    """Distance along each ray to the ground (z = 0), the facades (|y| = 15, below 12 m) or a car; inf: sky."""
    t = np.full(len(dirs), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        tg = -origin[2] / dirs[:, 2]
        t = np.where(tg > 0, tg, t)
        for wall in (-15.0, 15.0):
            tw = (wall - origin[1]) / dirs[:, 1]
            z = origin[2] + tw * dirs[:, 2]
            t = np.where((tw > 0) & (z < 12.0) & (tw < t), tw, t)
        inv = (1.0 / dirs).astype(np.float32)
        lo, hi = (cars[0] - cars[1] - origin).astype(np.float32), (cars[0] + cars[1] - origin).astype(np.float32)
        for s in range(0, len(dirs), 16384):  # slab test against every axis-aligned car at once: (R, cars)
            near, far = None, None
            for ax in range(3):
                a, b = lo[None, :, ax] * inv[s:s + 16384, ax, None], hi[None, :, ax] * inv[s:s + 16384, ax, None]
                n_ax, f_ax = np.minimum(a, b), np.maximum(a, b)
                near = n_ax if near is None else np.maximum(near, n_ax)
                far = f_ax if far is None else np.minimum(far, f_ax)
            near = np.where((near <= far) & (near > 0), near, np.inf).min(1)
            t[s:s + 16384] = np.minimum(t[s:s + 16384], near)
    return t


def _rig_poses(T_world_from_lidar):
    """World poses of the 8 cameras (ego + leading vehicle 15 m ahead): (origin, rotation) pairs."""
    T_world_from_ego = T_world_from_lidar @ np.linalg.inv(T_EGO_FROM_LIDAR)
    out = []
    for ahead in (0.0, 15.0):
        for (x, y, z), yaw in MOUNTS:
            c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
            R = T_world_from_ego[:3, :3] @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
            out.append((T_world_from_ego[:3, :3] @ [x + ahead, y, z] + T_world_from_ego[:3, 3], R))
    return out


def camera_cloud(rng, T_world_from_lidar, cars, n_points, noise=0.01, floaters=0.03):
    """A predicted cloud of the street in the ego LiDAR frame (see the module docstring)."""
    rays, pts = _rays(), []
    for origin, R in _rig_poses(T_world_from_lidar):
        d = rays @ R.T
        t = _first_hit(origin, d, cars)
        hit = np.isfinite(t) & (t < 150)
        t = t[hit] * (1 + rng.normal(0, noise, hit.sum()))
        pts.append(origin + d[hit] * t[:, None])
    world = np.concatenate(pts)
    world = world[rng.choice(len(world), min(n_points, len(world)), replace=False)]
    T = np.linalg.inv(T_world_from_lidar)
    pts = world @ T[:3, :3].T + T[:3, 3]
    n_f = int(floaters * len(pts))  # the sample is in random order: replace its first points
    pts[:n_f] = rng.uniform([-50, -50, -1.9], [50, 50, 13.1], (n_f, 3))  # 0-15 m above the ground
    return pts.astype(np.float32)


def make_frames(args):
    rng = np.random.default_rng(0)
    cars = _cars(rng)
    poses = [np.array([[1, 0, 0, float(i)], [0, 1, 0, 0], [0, 0, 1, 1.9], [0, 0, 0, 1.0]])
             for i in range(args.frames + 1)]  # 1 m per frame along x
    frames = []
    for i, T in enumerate(poses):
        pts = camera_cloud(rng, T, cars, args.points)
        T_L_from_W = np.linalg.inv(T)
        boxes = np.tile(np.eye(4), (len(cars[0]), 1, 1))
        boxes[:, :3, 3] = cars[0]
        frames.append({"pred_points": pts, "pred_conf": rng.uniform(1, 20, len(pts)).astype(np.float32),
                       "boxes_pose": T_L_from_W @ boxes, "boxes_half_extent": cars[1],
                       "T_ego_from_egolidar": T_EGO_FROM_LIDAR, "T_world_from_egolidar": T})
        if i == len(poses) - 1:
            gt = camera_cloud(rng, T, cars, args.gt, noise=0.0, floaters=0.0)
    return frames, gt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--gt", type=int, default=300_000)
    ap.add_argument("--frames", type=int, default=5, help="history frames K")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--icp", action="store_true", help="also time one ICP link (pose pred)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    frames, gt = make_frames(args)
    cur = frames[-1]
    print(f"scene: {len(cur['pred_points']):,} predicted points per frame, {len(gt):,} GT points, "
          f"K = {args.frames} history frames (built in {time.perf_counter() - t0:.1f} s)")
    cfg = FilterConfig(frames=args.frames)
    args_eval = (gt, cur["boxes_pose"], cur["boxes_half_extent"], cur["T_ego_from_egolidar"], cfg.metrics)
    t_eval, before = best_time(lambda: cloud_scores(cur["pred_points"], *args_eval), args.repeat)
    singles = [single_frame_filter(f, cfg) for f in frames[:-1]]
    hist = [HistoryFrame(s.points, gt_motion(cur["T_world_from_egolidar"], f["T_world_from_egolidar"]))
            for s, f in zip(singles, frames[:-1])]

    def stream():
        single = single_frame_filter(cur, cfg)
        keep, _ = apply_support(single, hist, cfg)
        return single, keep

    def cold():
        for f in frames[:-1]:
            single_frame_filter(f, cfg)
        return stream()

    t_stream, (single, keep) = best_time(stream, args.repeat)
    t_cold, _ = best_time(cold, 1)
    rows = [("evaluate (cloud_scores)", t_eval), ("filter, streaming (K cached)", t_stream),
            ("filter, cold (6 frames)", t_cold)]
    if args.icp:
        t_icp, res = best_time(lambda: estimate_motion(singles[-1].points, single.points, cfg.icp_voxel), 1)
        rows.append((f"ICP link (pose pred, {res.iterations} it)", t_icp))
    print(f"\n{'step':<34}{'seconds':>9}{'/ evaluate':>12}")
    for name, t in rows:
        print(f"{name:<34}{t:>9.3f}{t / t_eval:>12.2f}")
    after = cloud_scores(single.points[keep], *args_eval)
    print("\npoints after each filter:", {**single.counts, "support": int(keep.sum())})
    print("before:", {k: round(v, 4) for k, v in before.items()})
    print("after: ", {k: round(v, 4) for k, v in after.items()})
    _breakdown(cur, hist, cfg)


def _breakdown(cur, hist, cfg) -> None:
    """Seconds of each filter on the current frame (one run each, in pipeline order)."""
    from coopmap.filtering import filters as F

    p = cur["pred_points"].astype(np.float64)
    steps = {}
    t = time.perf_counter()
    p = p[F.range_crop(p, cfg.x_range, cfg.y_range, cfg.z_range)]
    steps["range"], t = time.perf_counter() - t, time.perf_counter()
    p = p[F.height_band(p, cur["T_ego_from_egolidar"], cfg.z_min, cfg.z_max)]
    steps["height"], t = time.perf_counter() - t, time.perf_counter()
    p, _ = F.voxel_downsample(p, cfg.voxel)
    steps["voxel"], t = time.perf_counter() - t, time.perf_counter()
    p = p[F.statistical_outlier_removal(p, cfg.sor_k, cfg.sor_std)]
    steps["sor"], t = time.perf_counter() - t, time.perf_counter()
    others = [h.points @ h.T_cur_from_hist[:3, :3].T + h.T_cur_from_hist[:3, 3] for h in hist]
    F.support_counts(p, others, cfg.support_cell)
    steps["support"] = time.perf_counter() - t
    print("seconds per filter:", {k: round(v, 3) for k, v in steps.items()}, f"({len(p):,} points after SOR)")


if __name__ == "__main__":
    main()
