"""``coopmap synth``: write synthetic scenes in OPV2V's on-disk format, plus dense depth ground truth."""

from __future__ import annotations

import argparse

from coopmap.synth.config import MAX_AGENTS, PCD_FORMATS, parse_image_size

_EPILOG = """\
writes  OUT/<split>/<scenario YYYY_MM_DD_HH_MM_SS>/data_protocol.yaml and, per CAV,
        OUT/<split>/<scenario>/<cav_id>/TTTTTT.yaml, TTTTTT.pcd, TTTTTT_camera0..3.png
        and TTTTTT_depth0..3.npy (float32 z-depth in metres at image resolution, 0 = sky).
The same arguments always write byte-identical files. See docs/synth.md.

example: coopmap synth --out /tmp/opv2v_synth --scenarios 2 --agents 4 --frames 10
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coopmap synth",
        description="Write synthetic OPV2V scenes (CARLA-style city, 4 cameras + 64-channel LiDAR per CAV) "
        "with dense depth ground truth.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output root (created if missing)")
    p.add_argument("--split", default="train", help="split folder name (default: train)")
    p.add_argument("--scenarios", type=int, default=1, help="number of scenarios (default: 1)")
    p.add_argument("--agents", type=int, default=3, help=f"CAVs per scenario, 1..{MAX_AGENTS} (default: 3)")
    p.add_argument("--frames", type=int, default=4, help="timestamps per scenario, stepping by 2 (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default: 0)")
    p.add_argument("--image-size", default="800x600", metavar="WxH",
                   help="camera image size; intrinsics follow the 100 deg FOV (default: 800x600)")
    p.add_argument("--pcd-format", choices=PCD_FORMATS, default="ascii",
                   help="point-cloud encoding; OPV2V's files are ascii (default: ascii)")
    p.add_argument("--no-lidar-noise", action="store_true", help="exact LiDAR ranges (no 0.02 m noise)")
    p.add_argument("--depth-png", action="store_true",
                   help="also write TTTTTT_depthK.png in HEAL's OPV2V-H encoding (8-bit, whole metres, 255 = sky)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from coopmap.synth.generate import generate

    summary = generate(
        args.out, split=args.split, scenarios=args.scenarios, agents=args.agents, frames=args.frames,
        seed=args.seed, image_size=parse_image_size(args.image_size), pcd_format=args.pcd_format,
        lidar_noise=not args.no_lidar_noise, progress=not args.quiet, depth_png=args.depth_png,
    )
    if not args.quiet:
        print(format_summary(summary))
    return 0


def format_summary(s: dict) -> str:
    """A few human-readable lines about a :func:`~coopmap.synth.generate` summary."""
    pts, cov = s["points_per_sweep"], s["sparse_coverage"]
    return "\n".join([
        f"wrote {s['files']} files to {s['root']} in {s['seconds']:.1f} s",
        f"  scenarios: {', '.join(s['scenarios'])}; {s['agents']} agents x {s['frames']} frames, "
        f"{s['images']} images",
        f"  LiDAR points per sweep: mean {pts[0]:.0f} (min {pts[1]:.0f}, max {pts[2]:.0f})",
        f"  sparse LiDAR depth coverage: mean {100 * cov[0]:.2f} % of pixels "
        f"(min {100 * cov[1]:.2f} %, max {100 * cov[2]:.2f} %)",
    ])
