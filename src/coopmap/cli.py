"""The ``coopmap`` command line: a thin dispatcher to one module per subcommand.

Each subcommand lives in its own module exposing ``main(argv: list[str]) -> int``; modules are imported only
when their subcommand runs, so ``coopmap --help`` stays fast. Data and config problems surface as one line
(``coopmap <cmd>: error: <file or key>: <what is wrong>``); ``--debug`` shows the full traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from coopmap.errors import CoopmapError

# name -> ("module:function", one-line help). Order is the order shown by --help.
SUBCOMMANDS: dict[str, tuple[str, str]] = {}


def _register(name: str, target: str, help_text: str) -> None:
    SUBCOMMANDS[name] = (target, help_text)


_register("synth", "coopmap.synth.cli:main", "write synthetic OPV2V scenes with dense depth ground truth")
_register("index", "coopmap.data.cli_index:main", "scan an OPV2V tree: splits, scenarios, agents, frames, problems")
_register("train", "coopmap.train.cli:main", "train / fine-tune a model (Hydra overrides; torchrun for DDP)")
_register("teacher-cache", "coopmap.models.cli_teacher_cache:main",
          "run a frozen teacher once over a split and cache its distillation targets")
_register("eval", "coopmap.evaluation.cli:main", "per-frame metrics of a model, single vs cooperative (resumable)")
_register("filter", "coopmap.filtering.cli:main", "filter predicted clouds over frames and export them for LiDAR detectors")
_register("pretrain", "coopmap.ablate.pretrain:main",
          "train the tiny model on many synthetic towns: the ablation's pretrained start and teacher")
_register("ablate", "coopmap.ablate.cli:main",
          "the Stage-2 variants over seeds, beside trivial references, with verdicts (resumable)")
_register("report", "coopmap.report.cli:main", "HTML report: training curves, metric tables, worst frames (BEV and cameras)")
_register("export", "coopmap.models.export:main",
          "write a model=mapanything checkpoint in MapAnything's own format (their keys; loads strictly there)")
_register("check-mapanything", "coopmap.models.check_mapanything:main",
          "check the installed MapAnything end to end on a synthetic sample (build, forward, steps, checkpoints)")
_register("demo", "coopmap.demo:main", "end-to-end demo on a generated synthetic OPV2V tree")


def _parser() -> argparse.ArgumentParser:
    width = max(len(n) for n in SUBCOMMANDS)
    listing = "\n".join(f"  {n:<{width}}  {h}" for n, (_, h) in SUBCOMMANDS.items())
    p = argparse.ArgumentParser(
        prog="coopmap",
        description="Fine-tune MapAnything on OPV2V: cooperative camera-only 3D reconstruction.",
        epilog=f"subcommands:\n{listing}\n\nRun `coopmap <subcommand> --help` for its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks for data/config errors")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("subcommand", nargs="?", choices=list(SUBCOMMANDS), metavar="SUBCOMMAND")
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    parser = _parser()
    ns = parser.parse_args(argv)
    if ns.version:
        from coopmap import __version__

        print(__version__)
        return 0
    if ns.subcommand is None:
        parser.print_help()
        return 0
    target, _ = SUBCOMMANDS[ns.subcommand]
    module_name, func_name = target.split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(ns.args) or 0)
    except CoopmapError as err:
        if debug:
            traceback.print_exc()
        print(f"coopmap {ns.subcommand}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"coopmap {ns.subcommand}: interrupted", file=sys.stderr)
        return 130
