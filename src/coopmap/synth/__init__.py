"""Synthetic OPV2V scenes: OPV2V's exact on-disk format plus dense depth ground truth (``coopmap synth``).

:func:`generate` is the public entry point; see docs/synth.md for what it writes and how it is tested.
"""

from coopmap.synth.generate import generate

__all__ = ["generate"]
