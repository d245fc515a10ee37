"""coopmap: fine-tune MapAnything on OPV2V for cooperative camera-only 3D reconstruction."""

__version__ = "0.1.0"
