"""Benchmark: Chamfer + F-score of coopmap.metrics against scipy's cKDTree and Open3D, plus memory and per-frame time.

    python benchmarks/bench_chamfer.py [--n-pred 1000000] [--n-gt 300000] [--repeat 2] [--memory-points 5000000]

All methods get the same clouds in one run; the table gives the best-of-``repeat`` wall time, the ratio to ours
and the largest absolute difference of the six results (chamfer, both directions, precision, recall, F-score)
to ours. Open3D (``compute_point_cloud_distance``, both directions; the numpy -> PointCloud conversion is
included in its time) is optional: if it cannot be imported the row is skipped. ``--extra-site DIR`` (or
COOPMAP_BENCH_SITE) appends a folder to ``sys.path`` *after* the venv, e.g. one made with
``pip install --target DIR open3d``, so Open3D's dependencies do not enter the project's venv.

The memory section runs ``chamfer_fscore`` on ``--memory-points`` predicted points in a fresh subprocess and
reports the peak resident memory above the inputs (Linux VmHWM, reset through /proc/self/clear_refs) and the
peak of numpy allocations (tracemalloc). The per-frame section times ``frame_metrics`` on a synthetic coop
sample (8 views at 518x392); ``--forward-seconds`` gives the model's forward time to compare with.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
from scipy.spatial import cKDTree

from coopmap.metrics import DEFAULT_CHUNK, chamfer_fscore, frame_metrics
from timing import best_time  # benchmarks/timing.py (the script's folder is on sys.path)

KEYS = ("chamfer", "chamfer_pred_to_gt", "chamfer_gt_to_pred", "precision", "recall", "fscore")


def scene_clouds(n_pred: int, n_gt: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A driving-like scene (ground, two facades, 40 cars; x, y in +-50 m) sampled twice: GT exact, prediction
    with 0.1 m noise and 5 % uniform outliers. Both in random order, float64."""
    rng = np.random.default_rng(seed)
    cars = np.c_[rng.uniform(-45, 45, 40), rng.choice([-6.0, -2.0, 2.0, 6.0], 40), rng.uniform(0, np.pi, 40)]

    def sample(n):
        kind = rng.choice(3, n, p=[0.5, 0.2, 0.3])
        p = np.c_[rng.uniform(-50, 50, n), rng.uniform(-50, 50, n), np.full(n, -1.9)]  # ground (LiDAR frame)
        wall = kind == 1
        p[wall, 1] = rng.choice([-15.0, 15.0], wall.sum())
        p[wall, 2] = rng.uniform(-1.9, 4.0, wall.sum())
        car = kind == 2
        c = cars[rng.integers(0, 40, car.sum())]
        half = np.array([2.3, 1.0, 0.8])
        local = rng.uniform(-1, 1, (car.sum(), 3)) * half
        face, rows = rng.integers(0, 3, car.sum()), np.arange(car.sum())
        local[rows, face] = np.sign(local[rows, face]) * half[face]  # on one of the box faces
        cs, sn = np.cos(c[:, 2]), np.sin(c[:, 2])
        p[car] = np.c_[c[:, 0] + cs * local[:, 0] - sn * local[:, 1], c[:, 1] + sn * local[:, 0] + cs * local[:, 1],
                       -1.1 + local[:, 2]]
        return p

    gt = sample(n_gt)
    pred = sample(n_pred) + rng.normal(0, 0.1, (n_pred, 3))
    out = rng.random(n_pred) < 0.05
    pred[out] = rng.uniform([-50, -50, -3], [50, 50, 4], (out.sum(), 3))
    return pred, gt


def ckdtree_chamfer(pred, gt, threshold):
    d_pg = cKDTree(gt).query(pred, workers=-1)[0]
    d_gp = cKDTree(pred).query(gt, workers=-1)[0]
    return _from_distances(d_pg, d_gp, threshold)


def open3d_chamfer(o3d, pred, gt, threshold):
    a = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pred))
    b = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(gt))
    d_pg = np.asarray(a.compute_point_cloud_distance(b))
    d_gp = np.asarray(b.compute_point_cloud_distance(a))
    return _from_distances(d_pg, d_gp, threshold)


def _from_distances(d_pg, d_gp, threshold):
    p, r = float(np.mean(d_pg < threshold)), float(np.mean(d_gp < threshold))
    return {"chamfer": 0.5 * (d_pg.mean() + d_gp.mean()), "chamfer_pred_to_gt": float(d_pg.mean()),
            "chamfer_gt_to_pred": float(d_gp.mean()), "precision": p, "recall": r,
            "fscore": 2 * p * r / (p + r) if p + r else 0.0}


def import_open3d(extra_site):
    if extra_site:
        sys.path.append(extra_site)
    try:
        import open3d

        return open3d, open3d.__version__
    except Exception as err:  # any import failure: skip the row, say why
        return None, f"{type(err).__name__}: {err}"


def speed_table(args, o3d) -> None:
    for name, (pred, gt) in {
        "scene": scene_clouds(args.n_pred, args.n_gt),
        "uniform": (np.random.default_rng(1).uniform([-50, -50, -3], [50, 50, 4], (args.n_pred, 3)),
                    np.random.default_rng(2).uniform([-50, -50, -3], [50, 50, 4], (args.n_gt, 3))),
    }.items():
        print(f"\n{name}: {len(pred):,} predicted vs {len(gt):,} GT points, threshold {args.threshold} m, "
              f"best of {args.repeat}")
        t_ours, ours = best_time(lambda p=pred, g=gt: chamfer_fscore(p, g, args.threshold), args.repeat)
        rows = [("coopmap (pykdtree f32)", t_ours, ours)]
        rows.append(("scipy cKDTree (f64)", *best_time(lambda p=pred, g=gt: ckdtree_chamfer(p, g, args.threshold),
                                                       args.repeat)))
        if o3d is not None:
            rows.append(("open3d compute_pcd_dist", *best_time(
                lambda p=pred, g=gt: open3d_chamfer(o3d, p, g, args.threshold), args.repeat)))
        print(f"{'method':<26}{'time s':>9}{'x ours':>9}{'ours / it':>11}{'max |diff|':>13}")
        for label, t, res in rows:
            diff = max(abs(res[k] - ours[k]) for k in KEYS)
            print(f"{label:<26}{t:>9.3f}{t / t_ours:>9.2f}{t_ours / t:>11.3f}{diff:>13.2e}")
        print("ours:", {k: round(v, 6) for k, v in ours.items()})


def _proc_status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))


def _peak_above(fn) -> tuple[int, float]:
    """(peak resident bytes above the RSS at the call, seconds) of ``fn()`` (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    rss0 = _proc_status("VmRSS:")
    t = time.perf_counter()
    fn()
    return _proc_status("VmHWM:") - rss0, time.perf_counter() - t


def memory_child(n_pred: int, n_gt: int, chunk: int) -> dict:
    """Runs in a subprocess: peak memory of one chamfer_fscore call above its inputs."""
    import tracemalloc

    pred, gt = scene_clouds(n_pred, n_gt, seed=3)
    hwm, seconds = _peak_above(lambda: chamfer_fscore(pred, gt, chunk=chunk))
    tracemalloc.start()
    chamfer_fscore(pred, gt, chunk=chunk)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"inputs_mb": (pred.nbytes + gt.nbytes) / 2**20, "peak_rss_above_inputs_mb": hwm / 2**20,
            "tracemalloc_peak_mb": traced / 2**20, "seconds": seconds}


def frame_memory_child(H: int, W: int) -> dict:
    """Runs in a subprocess: peak memory of frame_metrics on a synthetic 8-view frame of H x W pixels per view."""
    views, preds, lidar = synthetic_frame(seed=1, H=H, W=W)
    hwm, seconds = _peak_above(lambda: frame_metrics(views, preds, lidar))
    return {"pixels": 8 * H * W, "peak_rss_above_inputs_mb": hwm / 2**20, "seconds": seconds}


def _child(call: str) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import bench_chamfer as b; print(json.dumps(b.{call}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def memory_section(args) -> None:
    print(f"\nmemory: {args.memory_points:,} predicted vs {args.n_gt:,} GT points (fresh subprocess each)")
    print(f"{'chunk':>10}{'inputs MB':>11}{'peak RSS above inputs MB':>26}{'tracemalloc MB':>16}{'B/point':>9}"
          f"{'time s':>8}")
    for chunk in (DEFAULT_CHUNK, 1 << 20, 1 << 16):
        r = _child(f"memory_child({args.memory_points}, {args.n_gt}, {chunk})")
        per_pt = r["peak_rss_above_inputs_mb"] * 2**20 / (args.memory_points + args.n_gt)
        print(f"{chunk:>10}{r['inputs_mb']:>11.0f}{r['peak_rss_above_inputs_mb']:>26.0f}"
              f"{r['tracemalloc_peak_mb']:>16.0f}{per_pt:>9.1f}{r['seconds']:>8.2f}")
    side = int(round(math.sqrt(args.memory_points / 8 / 12)))  # 8 views of 4:3 images, ~memory_points pixels
    H, W = side * 3, side * 4
    r = _child(f"frame_memory_child({H}, {W})")
    print(f"frame_metrics on 8 views of {W}x{H} ({r['pixels']:,} predicted pixels): peak RSS above inputs "
          f"{r['peak_rss_above_inputs_mb']:.0f} MB ({r['peak_rss_above_inputs_mb'] * 2**20 / r['pixels']:.0f} B/pixel), "
          f"{r['seconds']:.2f} s")


_R_VEH_FROM_CV = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
_MOUNTS = [((2.5, 0.0, 1.0), 0.0), ((0.0, -0.3, 1.8), -100.0), ((0.0, 0.3, 1.8), 100.0), ((-2.0, 0.0, 1.5), 180.0)]


def _pose(yaw_deg, t):
    T = np.eye(4)
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = t
    return T


def synthetic_frame(seed=0, H=392, W=518, agents=((0.0, 0.0, 0.0), (15.0, 4.0, 30.0))):
    """A coop sample (B = 1, numpy) over a flat ground: 4 cameras per agent, sparse GT (3 % of pixels), predicted
    depth = true depth x (1 + 5 % noise), 60k LiDAR-like points per agent, 20 GT boxes. Ego vehicle frame = S."""
    import torch

    from coopmap.geometry import depthmap_to_pts_cam, opv2v_intrinsics, rotmat_to_quat_xyzw, transform_points

    rng = np.random.default_rng(seed)
    K = opv2v_intrinsics(W, H)
    T_ego_from_lidar = _pose(0.0, (-0.5, 0.0, 1.9))
    cams = []
    for x, y, yaw in agents:
        for k, (mount, cam_yaw) in enumerate(_MOUNTS):
            T_agent_from_cam = _pose(cam_yaw, mount)
            T_agent_from_cam[:3, :3] = T_agent_from_cam[:3, :3] @ _R_VEH_FROM_CV
            cams.append((len(cams) // 4, k, T_agent_from_cam, _pose(yaw, (x, y, 0.0)) @ T_agent_from_cam))
    T_world_from_S = np.linalg.inv(cams[0][3])
    rays = depthmap_to_pts_cam(np.ones((H, W)), K)
    views, preds, lidar = [], [], []
    boxes = np.tile(np.eye(4), (20, 1, 1))
    boxes[:, :3, 3] = np.c_[rng.uniform(-40, 40, (20, 2)), np.full(20, 0.8)]

    def b1(x, dtype=np.float32):
        return np.asarray(x, dtype=dtype)[None]

    for a, k, T_agent_from_cam, T_S_from_cam in cams:
        down = -(rays @ T_S_from_cam[:3, :3].T)[..., 2]  # metres of descent per unit z-depth
        depth = np.where(down > 1e-3, T_S_from_cam[2, 3] / np.maximum(down, 1e-3), 200.0).clip(0.5, 200.0)
        valid = rng.random((H, W)) < 0.03
        pts_cam = depthmap_to_pts_cam(depth * valid, K)
        pred_cam = depthmap_to_pts_cam(depth * (1 + 0.05 * rng.standard_normal((H, W))), K)
        pose = T_world_from_S @ T_S_from_cam
        T_egolidar_from_cam = np.linalg.inv(T_ego_from_lidar) @ T_S_from_cam
        ground = depth < 150
        pick = rng.choice(np.flatnonzero(ground), 15_000)  # 60k per agent over its 4 cameras
        lidar.append(transform_points(T_egolidar_from_cam, depthmap_to_pts_cam(depth, K).reshape(-1, 3)[pick]))
        quat = rotmat_to_quat_xyzw(torch.as_tensor(pose[:3, :3])).numpy()
        views.append({
            "camera_pose": b1(pose), "camera_intrinsics": b1(K), "depthmap": b1((depth * valid)[..., None]),
            "pts3d": b1(transform_points(pose, pts_cam) * valid[..., None]), "valid_mask": b1(valid, bool),
            "agent_index": b1(a, np.int64), "camera_index": b1(k, np.int64), "T_agent_from_cam": b1(T_agent_from_cam),
            "T_ego_from_cam": b1(T_S_from_cam), "T_egolidar_from_cam": b1(T_egolidar_from_cam),
            "boxes_pose": b1(T_world_from_S @ boxes), "boxes_half_extent": b1(np.tile([2.3, 1.0, 0.8], (20, 1))),
            "boxes_id": b1(np.arange(20), np.int64), "boxes_count": b1(20, np.int64),
            "dense_depthmap": b1(np.zeros((H, W, 1))), "has_dense_depth": b1(False, bool),
        })
        preds.append({"pts3d": b1(transform_points(pose, pred_cam)), "pts3d_cam": b1(pred_cam),
                      "cam_quats": b1(quat), "cam_trans": b1(pose[:3, 3])})
    return views, preds, np.concatenate(lidar)


def frame_section(args) -> None:
    views, preds, lidar = synthetic_frame(seed=0)
    n_px = sum(int(np.prod(p["pts3d"].shape[1:3])) for p in preds)
    t, row = best_time(lambda: frame_metrics(views, preds, lidar), args.repeat)
    print(f"\nframe_metrics: {len(views)} views, {n_px:,} predicted pixels, {len(lidar):,} GT LiDAR points: "
          f"{t:.3f} s per frame (best of {args.repeat}); chamfer {row['chamfer']:.3f} m, F {row['fscore']:.3f}")
    if args.forward_seconds:
        print(f"  = {t / args.forward_seconds:.2f} x the model's forward time ({args.forward_seconds} s given)")
    else:
        print("  (pass --forward-seconds S to compare with the model's forward time)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-pred", type=int, default=1_000_000)
    ap.add_argument("--n-gt", type=int, default=300_000)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--memory-points", type=int, default=5_000_000, help="0 skips the memory section")
    ap.add_argument("--forward-seconds", type=float, default=None)
    ap.add_argument("--extra-site", default=os.environ.get("COOPMAP_BENCH_SITE"))
    ap.add_argument("--skip-frame", action="store_true")
    args = ap.parse_args(argv)
    o3d, o3d_info = import_open3d(args.extra_site)
    print(f"threads: {os.cpu_count()} cpus, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"open3d: {o3d_info if o3d is not None else 'skipped (' + o3d_info + ')'}")
    speed_table(args, o3d)
    if args.memory_points:
        memory_section(args)
    if not args.skip_frame:
        frame_section(args)


if __name__ == "__main__":
    main()
