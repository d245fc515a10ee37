"""Pictures of a generated (or real) OPV2V agent frame: a LiDAR bird's-eye view and a dense-depth view.

``python -m coopmap.synth.preview --agent DIR/<split>/<scenario>/<cav_id> --stamp 000068 --out docs/images``
writes ``synth_camera0.png`` (a copy of camera0), ``synth_lidar_bev.png`` and ``synth_depth0.png``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import yaml

from coopmap.geometry import (
    box_corners_world,
    carla_to_matrix,
    intrinsics_from_carla,
    lidar_points_to_camera_cv,
    project,
)


def read_pcd_xyz(path) -> np.ndarray:
    """(N, 3) points of a .pcd written by :func:`coopmap.synth.writer.write_pcd` (ascii or binary)."""
    raw = Path(path).read_bytes()
    end = raw.index(b"\nDATA ") + 1
    data_line_end = raw.index(b"\n", end)
    kind = raw[end + 5:data_line_end].decode().strip()
    n = int(next(ln.split()[1] for ln in raw[:end].decode().splitlines() if ln.startswith("POINTS")))
    body = raw[data_line_end + 1:]
    if kind == "ascii":
        rows = np.array(body.split(), dtype=np.float64).reshape(n, 4)
    else:
        rows = np.frombuffer(body, dtype="<f4", count=4 * n).reshape(n, 4).astype(np.float64)
    return rows[:, :3]


def lidar_bev(agent: Path, stamp: str, path, half_range: float = 60.0) -> None:
    """Bird's-eye view of one sweep (LiDAR frame: forward up, right to the right) with the yaml's boxes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = yaml.safe_load((agent / f"{stamp}.yaml").read_text())
    pts = read_pcd_xyz(agent / f"{stamp}.pcd")
    cavs = {int(p.name) for p in agent.parent.iterdir() if p.is_dir()}
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    keep = (np.abs(pts[:, :2]) < half_range).all(1)
    ground = keep & (pts[:, 2] < -1.75)  # the LiDAR is 1.9 m above the road
    above = np.flatnonzero(keep & ~ground)
    above = above[np.argsort(pts[above, 2], kind="stable")]  # higher points drawn on top
    ax.scatter(pts[ground, 1], pts[ground, 0], s=0.3, color="0.7", linewidths=0)
    sc = ax.scatter(pts[above, 1], pts[above, 0], s=1.0, c=pts[above, 2] + 1.9, cmap="turbo", vmin=0.0, vmax=6.0,
                    linewidths=0)
    fig.colorbar(sc, ax=ax, shrink=0.7, label="height above the road (m)")
    T_lidar_from_world = np.linalg.inv(carla_to_matrix(meta["lidar_pose"]))
    for vid, v in meta["vehicles"].items():
        c = box_corners_world(v["location"], v["center"], v["extent"], v["angle"])[:4]
        c = c @ T_lidar_from_world[:3, :3].T + T_lidar_from_world[:3, 3]
        loop = np.vstack([c, c[:1]])
        ax.plot(loop[:, 1], loop[:, 0], color="tab:red" if vid in cavs else "tab:blue", lw=1.2)
    ax.plot([0], [0], marker="^", color="black", ms=7)
    ax.set_xlim(-half_range, half_range)
    ax.set_ylim(-half_range, half_range)
    ax.set_aspect("equal")
    ax.set_xlabel("y, right (m)")
    ax.set_ylabel("x, forward (m)")
    ax.set_title(f"LiDAR sweep of CAV {agent.name} at {stamp}: {len(pts)} points\n"
                 "road returns grey; boxes from the yaml: CAVs red, other vehicles blue")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def depth_view(agent: Path, stamp: str, k: int, path) -> None:
    """Dense depth of camera k (sqrt inverse-depth colours, no depth black) with the sparse LiDAR depth beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = yaml.safe_load((agent / f"{stamp}.yaml").read_text())
    dense = np.load(agent / f"{stamp}_depth{k}.npy", allow_pickle=False)
    H, W = dense.shape
    cam = meta[f"camera{k}"]
    pts = lidar_points_to_camera_cv(read_pcd_xyz(agent / f"{stamp}.pcd"), cam["cords"], meta["lidar_pose"])
    uv, z = project(pts, intrinsics_from_carla(np.asarray(cam["intrinsic"])))
    col, row = np.round(uv[:, 0]), np.round(uv[:, 1])
    ok = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    sparse = np.zeros_like(dense)
    order = np.argsort(-z[ok])  # nearest written last
    sparse[row[ok][order].astype(int), col[ok][order].astype(int)] = z[ok][order]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), dpi=100)
    for ax, img, title in ((axes[0], dense, "dense z-depth (generator ground truth)"),
                           (axes[1], sparse, f"LiDAR z-depth ({100 * (sparse > 0).mean():.1f} % of pixels)")):
        inv = np.ma.masked_equal(np.where(img > 0, 1.0 / np.maximum(img, 1e-6), 0.0), 0.0)
        cmap = plt.get_cmap("magma").copy()
        cmap.set_bad("black")
        ax.imshow(np.sqrt(inv), cmap=cmap, vmin=0.0, vmax=0.6, interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m coopmap.synth.preview", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", required=True, help="an agent folder: <root>/<split>/<scenario>/<cav_id>")
    p.add_argument("--stamp", required=True, help="timestamp, e.g. 000068")
    p.add_argument("--out", default="docs/images", help="output folder (default: docs/images)")
    args = p.parse_args(argv)
    agent, out = Path(args.agent), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(agent / f"{args.stamp}_camera0.png", out / "synth_camera0.png")
    lidar_bev(agent, args.stamp, out / "synth_lidar_bev.png")
    depth_view(agent, args.stamp, 0, out / "synth_depth0.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
