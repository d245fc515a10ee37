"""``coopmap demo`` (``make demo``): generate a small synthetic OPV2V tree and summarise it.

For now the demo only runs the synthetic generator (``coopmap synth``); training and evaluation on the
generated tree will be added here as they land.
"""

from __future__ import annotations

import argparse

from coopmap.synth.config import parse_image_size


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coopmap demo",
        description="End-to-end demo on a generated synthetic OPV2V tree (1 scenario, 3 CAVs, 4 frames).",
    )
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default: demo_out/)")
    p.add_argument("--image-size", default="800x600", metavar="WxH", help="camera size (default: 800x600)")
    p.add_argument("--frames", type=int, default=4, help="timestamps (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from coopmap.synth.cli import format_summary
    from coopmap.synth.generate import generate

    summary = generate(args.out, split="train", scenarios=1, agents=3, frames=args.frames, seed=args.seed,
                       image_size=parse_image_size(args.image_size))
    print("coopmap demo: synthetic OPV2V tree")
    print(format_summary(summary))
    return 0
