"""``coopmap filter``: clean predicted clouds over frames and export them for LiDAR detectors (docs/filtering.md).

- :mod:`~coopmap.filtering.filters`: the filters as pure functions (keep masks, voxel groups, support counts).
- :mod:`~coopmap.filtering.motion`: ego motion between frames, GT or ICP.
- :mod:`~coopmap.filtering.export`: KITTI .bin, binary .pcd, .ply and .npz writers / readers.
- :mod:`~coopmap.filtering.scoring`: the eval point-cloud metrics of one saved frame (before / after).
- :mod:`~coopmap.filtering.frames`: listing and loading the frames of an eval output.
- :mod:`~coopmap.filtering.pipeline`: ``filter_frame`` and the resumable ``run_filter``.
"""

from coopmap.filtering.config import FilterConfig
from coopmap.filtering.pipeline import HistoryFrame, SingleFrame, filter_frame, run_filter

__all__ = ["FilterConfig", "HistoryFrame", "SingleFrame", "filter_frame", "run_filter"]
