"""Shared front end of the commands configured by Hydra overrides (``train``, ``eval``, ``teacher-cache``).

``coopmap train data.root=DIR experiment=stage2_full trainer.max_steps=100`` composes the packaged ``train`` config
with those overrides; ``--cfg`` prints the composed config and exits; ``--help`` explains the groups and options.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from coopmap.config import compose


def run_with_overrides(
    prog: str, config_name: str, description: str, argv: list[str], func: Callable[[DictConfig], Any]
) -> int:
    parser = argparse.ArgumentParser(
        prog=f"coopmap {prog}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Overrides use Hydra's syntax: key=value (e.g. data.root=DIR trainer.max_steps=100), group=option "
            "(e.g. model=tiny, experiment=stage2_full), lists as [a,b]. A misspelt key fails with its name. "
            f"`coopmap {prog} --cfg [overrides]` prints the composed config."
        ),
    )
    parser.add_argument("--cfg", action="store_true", help="print the composed config and exit")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    args = parser.parse_args(argv)
    cfg = compose(config_name, args.overrides)
    if args.cfg:
        print(OmegaConf.to_yaml(cfg))
        return 0
    func(cfg)
    return 0
