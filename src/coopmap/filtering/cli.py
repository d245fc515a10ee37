"""``coopmap filter --pred EVAL_OUT --out DIR [options]``: parse the options into a FilterConfig, call run_filter."""

from __future__ import annotations

import argparse
import json

from coopmap.filtering.config import BOX_SOURCES, FORMATS, FRAMES, INTENSITIES, POSES, FilterConfig

DESCRIPTION = """Filter the predicted clouds of a `coopmap eval ... eval.save_points=true` output over frames and
export them for LiDAR detectors.

Filters, in this order (each can be switched off):
  1. range crop        keep x, y, z inside --range (ego LiDAR frame, bounds included)      [--no-range]
  2. height band       keep heights above the ground (ego vehicle frame z) in [--z-min, --z-max]
                                                                                         [--no-height-band]
  3. confidence        keep conf >= the --conf-percentile-th percentile of the frame     [0 = off]
  4. voxel downsample  one point per --voxel cube: the centroid (conf: the mean)         [0 = off]
  5. outlier removal   drop points whose mean distance to their --sor-k nearest neighbours
                       exceeds mean + --sor-std x std over the frame                     [--sor-k 0 = off]
  6. multi-frame support: the --frames K previous available frames of the same scenario/ego/mode (after
                       filters 1-5; within 4K timestamp units) are mapped into the current ego LiDAR frame
                       (--pose gt: GT LiDAR poses; pred: ICP of consecutive predicted clouds). A point is kept
                       if it is observed in >= --min-support M frames, the current frame counting as 1 and a
                       history frame counting if it has a point in the same or an adjacent --support-cell cube.
                       M is capped at 1 + the number of history frames (a first frame is not filtered).
                                                                                         [--frames 0 = off]
Box rule (movers): points inside the frame's vehicle boxes grown by --box-margin (--keep-boxes gt: the npz's GT
boxes; pred: its pred_boxes_* arrays if present; none) are exempt from filters 5 and 6, so moving vehicles
(no multi-frame support) and far vehicles of fewer than k points (SOR outliers by construction) are not erased.
With gt boxes this uses ground truth: for a detection benchmark prefer pred or none.

Writes DIR/<mode>/<scenario>/<ego_id>/<timestamp>.{pcd,bin,ply,npz} (the OPV2V layout), DIR/filter_metrics.csv
(per frame: chamfer, fscore, bev_iou, floating_ratio, vehicle_recall, n_points before and after, n_history,
status) and DIR/filter_summary.json. Re-running into DIR resumes (frames in the CSV are not redone).
Details: docs/filtering.md.
"""


def _parser() -> argparse.ArgumentParser:
    d = FilterConfig()
    p = argparse.ArgumentParser(prog="coopmap filter", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", required=True, metavar="EVAL_OUT", help="out_dir of coopmap eval (eval.save_points=true)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (re-running into it resumes)")
    g = p.add_argument_group("filters")
    g.add_argument("--range", nargs=6, type=float, metavar=("XMIN", "XMAX", "YMIN", "YMAX", "ZMIN", "ZMAX"),
                   default=[*d.x_range, *d.y_range, *d.z_range], help="crop box, metres, ego LiDAR frame "
                   "(default: %(default)s, the evaluated range)")
    g.add_argument("--no-range", action="store_true", help="no range crop")
    g.add_argument("--z-min", type=float, default=d.z_min, help="metres above the ground (default %(default)s)")
    g.add_argument("--z-max", type=float, default=d.z_max, help="metres above the ground (default %(default)s)")
    g.add_argument("--no-height-band", action="store_true", help="no height band")
    g.add_argument("--conf-percentile", type=float, default=d.conf_percentile, metavar="P",
                   help="drop the frame's lowest-confidence P %% (default %(default)s = off)")
    g.add_argument("--voxel", type=float, default=d.voxel, help="voxel side, metres (default %(default)s; 0 = off)")
    g.add_argument("--sor-k", type=int, default=d.sor_k, help="neighbours (default %(default)s; 0 = off)")
    g.add_argument("--sor-std", type=float, default=d.sor_std, help="std ratio (default %(default)s)")
    g.add_argument("--frames", type=int, default=d.frames, metavar="K",
                   help="history frames (default %(default)s; 0 = off)")
    g.add_argument("--min-support", type=int, default=d.min_support, metavar="M",
                   help="frames a point must be seen in (default %(default)s)")
    g.add_argument("--support-cell", type=float, default=d.support_cell, help="metres (default %(default)s)")
    g.add_argument("--pose", choices=POSES, default=d.pose, help="ego motion between frames (default %(default)s)")
    g.add_argument("--keep-boxes", choices=BOX_SOURCES, default=d.keep_boxes,
                   help="boxes of the box rule (default %(default)s)")
    g.add_argument("--box-margin", type=float, default=d.box_margin, help="metres (default %(default)s)")
    o = p.add_argument_group("outputs")
    o.add_argument("--format", nargs="+", choices=FORMATS, default=d.formats, dest="formats",
                   help="one or more of npz, pcd (binary), ply, kitti (.bin) (default: %(default)s)")
    o.add_argument("--frame", choices=FRAMES, default=d.frame,
                   help="frame of pcd/ply/kitti points: native = OPV2V LiDAR (left-handed, y right; OpenCOOD), "
                        "rh = x forward, y left, z up (KITTI/OpenPCDet axes) (default %(default)s)")
    o.add_argument("--intensity", choices=INTENSITIES, default=d.intensity,
                   help="conf: 1 - 1/conf in [0, 1); zero (default %(default)s)")
    o.add_argument("--modes", nargs="+", default=[], help="modes to filter (default: all found)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(ns: argparse.Namespace) -> FilterConfig:
    cfg = FilterConfig(
        range_crop=not ns.no_range, x_range=ns.range[0:2], y_range=ns.range[2:4], z_range=ns.range[4:6],
        z_min=None if ns.no_height_band else ns.z_min, z_max=None if ns.no_height_band else ns.z_max,
        conf_percentile=ns.conf_percentile, voxel=ns.voxel, sor_k=ns.sor_k, sor_std=ns.sor_std,
        frames=ns.frames, min_support=ns.min_support, support_cell=ns.support_cell, pose=ns.pose,
        keep_boxes=ns.keep_boxes, box_margin=ns.box_margin, formats=list(ns.formats), frame=ns.frame,
        intensity=ns.intensity, modes=list(ns.modes), progress=not ns.no_progress,
    )
    return cfg.check()


def main(argv: list[str]) -> int:
    ns = _parser().parse_args(argv)
    cfg = config_from_args(ns)
    from coopmap.filtering.pipeline import run_filter

    result = run_filter(ns.pred, ns.out, cfg)
    print(f"filtered {result['rows']} frames ({result['ok']} ok, {result['skipped']} skipped) into "
          f"{result['out_dir']}")
    for mode, stats in result["summary"].items():
        picks = {f"{k}_{w}": stats.get(f"{k}_{w}/mean") for k in ("chamfer", "fscore", "floating_ratio",
                                                                  "vehicle_recall") for w in ("before", "after")}
        print(f"  {mode}: " + json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                                          for k, v in picks.items()}))
    return 0
