"""Pictures of one frame: a bird's-eye view of predicted vs GT points with the GT boxes (before / after
filtering), and the camera images with their sparse LiDAR depth.

BEV axes (ego LiDAR frame, right-handed): **x forward points up**, **y left points left** (the horizontal axis
is y, drawn decreasing to the right), so the picture is what a viewer above the car, facing forward, sees.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from coopmap.geometry import transform_points
from coopmap.report.frames import CameraView

#: colour range of predicted points: height above the ground (ego vehicle frame z), metres.
HEIGHT_RANGE = (-0.5, 4.0)
GT_COLOR = "0.55"
BOX_COLOR = "#d62728"


def box_outlines(boxes_pose: np.ndarray, half_extent: np.ndarray) -> np.ndarray:
    """Footprints of boxes as closed outlines plus a heading tick, in the ego LiDAR x/y plane.

    Args:
        boxes_pose: (K, 4, 4) T_egolidar_from_box (box frame x along the length, y left, z up);
        half_extent: (K, 3) half length, width, height.
    Returns:
        (K, 7, 2) x, y metres: the 4 corners of the footprint (front-left first), closed, then the centre and the
        middle of the front edge (drawn as the heading tick).
    """
    boxes_pose = np.asarray(boxes_pose, dtype=np.float64).reshape(-1, 4, 4)
    e = np.asarray(half_extent, dtype=np.float64).reshape(-1, 3)
    signs = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1], [1, 1], [0, 0], [1, 0]], dtype=np.float64)
    local = np.zeros((len(e), len(signs), 3))
    local[..., :2] = signs[None] * e[:, None, :2]
    return transform_points(boxes_pose, local)[..., :2]


def _subsample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, limit, replace=False))


def draw_bev(ax, pred_pts, gt_pts, boxes_pose, half_extent, T_ego_from_egolidar, title: str,
             extent: float = 50.0, max_points: int = 200_000):
    """Draw one BEV panel on ``ax`` (plot coordinates: horizontal = y, vertical = x). Returns the scatter of the
    predicted points (for a colour bar).

    Args:
        pred_pts, gt_pts: (N, 3), (M, 3) metres, ego LiDAR frame (RH); at most ``max_points`` of each are drawn
            (a fixed random subset);
        boxes_pose, half_extent: GT boxes (see :func:`box_outlines`);
        T_ego_from_egolidar: (4, 4), gives the height above the ground (ego vehicle frame z) that colours points.
    """
    rng = np.random.default_rng(0)
    pred = np.asarray(pred_pts, dtype=np.float64).reshape(-1, 3)
    gt = np.asarray(gt_pts, dtype=np.float64).reshape(-1, 3)
    gt = gt[_subsample(len(gt), max_points, rng)]
    pred = pred[_subsample(len(pred), max_points, rng)]
    height = transform_points(np.asarray(T_ego_from_egolidar, dtype=np.float64), pred)[:, 2]
    ax.scatter(gt[:, 1], gt[:, 0], s=0.6, c=GT_COLOR, linewidths=0, rasterized=True, label="GT LiDAR")
    sc = ax.scatter(pred[:, 1], pred[:, 0], s=0.6, c=height, cmap="viridis", norm=Normalize(*HEIGHT_RANGE),
                    linewidths=0, rasterized=True, label="predicted")
    outlines = box_outlines(boxes_pose, half_extent)[..., ::-1]  # (x, y) -> plot (y, x)
    ax.add_collection(LineCollection([o[:5] for o in outlines] + [o[5:] for o in outlines], colors=BOX_COLOR,
                                     linewidths=1.0, label="GT boxes"))
    ax.plot([0], [0], marker="^", color="k", markersize=7, linestyle="none", label="ego LiDAR")
    ax.set_xlim(extent, -extent)  # y left is to the left
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("y [m]  (+ = left)", fontsize=8)
    ax.set_ylabel("x [m]  (+ = forward)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.25)
    ax.set_title(title, fontsize=9)
    return sc


def plot_bev(clouds: dict[str, np.ndarray], filtered: np.ndarray | None, path: Path, dpi: int, title: str,
             max_points: int = 200_000, filter_note: str | None = None) -> Path:
    """BEV of a saved frame (keys of ``frames.CLOUD_KEYS``); a second panel with the filtered cloud when given."""
    panels = [("predicted (all saved points)", clouds["pred_points"])]
    if filtered is not None:
        panels.append(("after filtering", filtered))
    fig = Figure(figsize=(5.6 * len(panels) + 0.8, 6.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    sc = None
    for ax, (name, pts) in zip(axes, panels):
        n_gt = len(clouds["gt_points"])
        sc = draw_bev(ax, pts, clouds["gt_points"], clouds["boxes_pose"], clouds["boxes_half_extent"],
                      clouds["T_ego_from_egolidar"], f"{name}: {len(pts):,} pts; GT LiDAR {n_gt:,} pts",
                      max_points=max_points)
    axes[0].legend(handles=_legend_handles(), loc="lower left", fontsize=7, framealpha=0.85)
    fig.colorbar(sc, ax=list(axes), shrink=0.8, label="predicted point height above ground [m]")
    width = 60 * len(panels)
    text = "\n".join(textwrap.wrap(title, width) + textwrap.wrap(filter_note or "", width))
    fig.suptitle(text, fontsize=9)
    fig.savefig(path, dpi=dpi)
    return path


def _legend_handles() -> list:
    def dot(color, name):
        return Line2D([], [], marker="o", color=color, linestyle="none", markersize=4, label=name)

    return [dot(GT_COLOR, "GT LiDAR"), dot(_pred_color(), "predicted (colour: height)"),
            Line2D([], [], color=BOX_COLOR, linewidth=1.0, label="GT boxes (tick: heading)"),
            Line2D([], [], marker="^", color="k", linestyle="none", markersize=6, label="ego LiDAR")]


def _pred_color():
    return matplotlib.colormaps["viridis"](0.6)


def plot_cameras(cams: Sequence[CameraView], path: Path, dpi: int, title: str,
                 depth_max: float | None = None) -> Path:
    """The frame's camera images (one row per agent, camera0..3 across) with the sparse LiDAR depth as dots
    coloured by z-depth (shared colour scale, 0 to ``depth_max``, default the 98th percentile)."""
    agents = list(dict.fromkeys(c.agent_id for c in cams))
    ncols = max(sum(c.agent_id == a for c in cams) for a in agents)
    h, w = cams[0].rgb.shape[:2]
    valid = np.concatenate([c.depth[c.depth > 0] for c in cams])
    vmax = depth_max or (float(np.percentile(valid, 98)) if valid.size else 1.0)
    panel_w = 3.3
    fig = Figure(figsize=(panel_w * ncols + 0.9, len(agents) * panel_w * h / w + 0.8), layout="constrained")
    axes = fig.subplots(len(agents), ncols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    sc = None
    dot = max(1.0, (0.5 * panel_w * 72.0 / w) ** 2)  # points^2: a disc half an image pixel across
    for row, agent in enumerate(agents):
        for col, cam in enumerate(c for c in cams if c.agent_id == agent):
            ax = axes[row, col]
            ax.imshow(cam.rgb, interpolation="nearest")
            v, u = np.nonzero(cam.depth > 0)
            sc = ax.scatter(u, v, c=cam.depth[v, u], s=dot, cmap="turbo", norm=Normalize(0.0, vmax),
                            linewidths=0)
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
            role = "ego" if row == 0 else "CAV"
            ax.set_title(f"{role} {agent}  camera{cam.camera}  ({len(u)} depth px)", fontsize=8)
    if sc is not None:
        fig.colorbar(sc, ax=axes.ravel().tolist(), shrink=0.8, label="sparse LiDAR z-depth [m]")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=dpi)
    return path
