"""``coopmap report INPUT [INPUT ...] --out DIR``: parse the options, call ``make_report``."""

from __future__ import annotations

import argparse

DESCRIPTION = """Write a self-contained HTML report (index.html and the PNGs it shows) into DIR.

INPUT folders are recognised by what they hold (several may be given, of any kind):
  run folder       train_log.csv (coopmap train; val_log.csv too when validation ran)
  eval folder      coop_metrics.csv, config.yaml, points/ (coopmap eval ... eval.save_points=true)
  filter folder    filter_metrics.csv and filtered clouds (coopmap filter); paired with the eval folder
                   whose frames it filtered
  ablation folder  ablation.csv, verdicts.json, runs/<variant>/, eval/<variant>/, filter/<variant>/
                   (coopmap ablate)

The page shows: the verdicts of an ablation (each variant vs the baseline on the metric it targets, failures
included), the metric table per mode, bar charts single vs coop per variant, the filter's before/after table,
training curves (loss/total, every loss/<section> and <section>/<term>, scale_err, pose_abs_t/r, lr), and for
the K worst frames a bird's-eye view of predicted vs GT points with the GT boxes (before and after filtering)
plus the frame's camera images with their sparse LiDAR depth, re-loaded from data.root of the eval's
config.yaml (if that data is gone, the page says so). Open DIR/index.html in a browser (no server needed).
Details: docs/report.md.

Examples:
  coopmap report ablation_out --out report
  coopmap report runs/stage1 eval/stage1 filter/stage1 --out report --worst 5 --worst-by pose_abs_t
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coopmap report", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="run, eval, filter or ablation folder(s)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (index.html + PNGs)")
    p.add_argument("--worst", type=int, default=3, metavar="K",
                   help="worst frames pictured per eval folder (default %(default)s; 0 = none)")
    p.add_argument("--worst-by", default="chamfer", metavar="METRIC",
                   help="coop_metrics.csv column ranking the frames (default %(default)s; for scores such as "
                        "fscore the smallest are the worst)")
    p.add_argument("--worst-mode", default="coop", metavar="MODE", help="mode of the worst frames (default "
                   "%(default)s; the eval's first mode if it has none)")
    p.add_argument("--frames-of", nargs="+", metavar="NAME", default=None,
                   help="eval folders (by name, e.g. ablation variants) whose worst frames are pictured (default: "
                        "those with a filter output, else all)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs (default %(default)s)")
    p.add_argument("--max-points", type=int, default=200_000, metavar="N",
                   help="points per cloud drawn in a BEV panel, a fixed random subset beyond (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str]) -> int:
    ns = _parser().parse_args(argv)
    from coopmap.errors import ConfigError
    from coopmap.report.build import ReportOptions, make_report

    if ns.worst < 0 or ns.dpi < 10 or ns.max_points < 1:
        raise ConfigError(f"need --worst >= 0, --dpi >= 10, --max-points >= 1 (got {ns.worst}, {ns.dpi}, "
                          f"{ns.max_points})")
    opts = ReportOptions(worst=ns.worst, worst_by=ns.worst_by, worst_mode=ns.worst_mode, frames_of=ns.frames_of,
                         dpi=ns.dpi, max_points=ns.max_points, progress=not ns.no_progress)
    path = make_report(ns.inputs, ns.out, opts)
    print(f"report: {path}")
    return 0
