"""The point filters of ``coopmap filter``: pure functions returning a boolean keep mask (or voxel groups).

Every function takes points ``(N, 3)`` in metres; the frame each one expects is named in its docstring (the
pipeline works in the **ego LiDAR frame, right-handed**: x forward, y left, z up; heights come from the ego
vehicle frame, whose z is the height above the ground). Order, defaults and rationale: docs/filtering.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pykdtree.kdtree import KDTree

from coopmap.errors import ShapeError, check_shape
from coopmap.metrics import crop_range
from coopmap.metrics._arrays import as_points, to_numpy

#: kd-tree queries per call in the outlier filter (bounds its temporaries: ~140 bytes per query for k = 16).
_CHUNK = 1 << 18
#: most cells of a dense support grid; above it the sparse (sorted keys) path is used.
_MAX_DENSE_CELLS = 1 << 25


def range_crop(pts, x_range=(-50.0, 50.0), y_range=(-50.0, 50.0), z_range=(-3.0, 4.0)) -> np.ndarray:
    """Keep the points inside an axis-aligned box, bounds included (``coopmap.metrics.crop_range``).

    Args:
        pts: (N, 3) metres, ego LiDAR frame; x_range, y_range, z_range: (low, high) metres (z_range None: no z).
    Returns:
        (N,) bool keep mask.
    """
    return crop_range(pts, tuple(x_range), tuple(y_range), None if z_range is None else tuple(z_range))


def heights_above_ground(pts_L, T_ego_from_egolidar) -> np.ndarray:
    """(N,) height above the ground of ego-LiDAR-frame points: z in the ego vehicle frame (origin on the ground)."""
    p = as_points("pts", pts_L, finite=False)
    T = to_numpy(T_ego_from_egolidar, np.float64)
    check_shape("T_ego_from_egolidar", T, (4, 4))
    return p.astype(np.float64, copy=False) @ T[2, :3] + T[2, 3]


def height_band(pts_L, T_ego_from_egolidar, z_min: float | None = -0.5, z_max: float | None = 4.0) -> np.ndarray:
    """Keep the points whose height above the ground is in [z_min, z_max] (bounds included; None: unbounded).

    ``z_max`` = 4 m keeps exactly the points that ``floating_ratio`` does not count as floating (> 4 m, strict).

    Args:
        pts_L: (N, 3) metres, ego LiDAR frame; T_ego_from_egolidar: (4, 4) into the ego vehicle frame.
    Returns:
        (N,) bool keep mask.
    """
    h = heights_above_ground(pts_L, T_ego_from_egolidar)
    keep = np.ones(len(h), dtype=bool)
    if z_min is not None:
        keep &= h >= z_min
    if z_max is not None:
        keep &= h <= z_max
    return keep


def confidence_percentile(conf, percentile: float) -> np.ndarray:
    """Keep the points whose confidence is at least the ``percentile``-th percentile of the frame's confidences.

    The threshold is ``np.percentile(conf, percentile)`` (linear interpolation); ties at the threshold are kept, so
    a constant confidence keeps every point. ``percentile`` <= 0 keeps everything.

    Args:
        conf: (N,) confidences (MapAnything: >= 1, larger = surer); percentile: in [0, 100].
    Returns:
        (N,) bool keep mask.
    """
    c = to_numpy(conf, np.float64).reshape(-1)
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    if percentile <= 0 or len(c) == 0:
        return np.ones(len(c), dtype=bool)
    return c >= np.percentile(c, percentile)


def _coherent_order(p: np.ndarray, cell: float = 2.0) -> np.ndarray:
    """A permutation sorting points by a coarse 3D cell key: kd-tree queries in this order run several times
    faster than in random order (the results do not depend on it)."""
    q = np.floor((p - p.min(0)) / cell).astype(np.int64)
    dims = q.max(0) + 1
    return np.argsort((q[:, 0] * dims[1] + q[:, 1]) * dims[2] + q[:, 2], kind="stable")


def mean_knn_distance(pts, k: int) -> np.ndarray:
    """(N,) mean distance of every point to its ``k`` nearest other points (pykdtree, float32, centred).

    Needs N > k. Duplicates count as neighbours at distance 0.
    """
    p = as_points("pts", pts)
    if len(p) <= k:
        raise ValueError(f"need more than k = {k} points, got {len(p)}")
    order = _coherent_order(p)
    p32 = np.ascontiguousarray((p[order] - p.mean(0)).astype(np.float32))
    tree = KDTree(p32)
    out = np.empty(len(p), dtype=np.float64)
    for s in range(0, len(p), _CHUNK):
        d, _ = tree.query(p32[s : s + _CHUNK], k=k + 1)
        out[order[s : s + _CHUNK]] = d[:, 1:].astype(np.float64).mean(1)  # column 0 is the point itself (d = 0)
    return out


def statistical_outlier_removal(pts, k: int = 16, std_ratio: float = 2.0) -> np.ndarray:
    """Keep the points whose mean distance to their ``k`` nearest neighbours is <= mean + std_ratio * std.

    Mean and standard deviation are taken over the per-point mean distances of the whole cloud. A cloud of at
    most ``k`` points is kept whole (no statistic). ``k`` <= 0 keeps everything.

    Args:
        pts: (N, 3) metres, any frame.
    Returns:
        (N,) bool keep mask.
    """
    p = as_points("pts", pts)
    if k <= 0 or len(p) <= k:
        return np.ones(len(p), dtype=bool)
    d = mean_knn_distance(p, k)
    return d <= d.mean() + std_ratio * d.std()


@dataclass(frozen=True)
class VoxelGroups:
    """Points grouped by voxel: voxel v holds ``order[start[v] : start[v] + counts[v]]`` (input indices, ascending
    within a voxel); voxels in increasing key order (x, then y, then z cell index)."""

    order: np.ndarray  # (N,) int64
    start: np.ndarray  # (V,) int64
    counts: np.ndarray  # (V,) int64

    @property
    def rep(self) -> np.ndarray:
        """(V,) the representative of each voxel: its point of lowest input index."""
        return self.order[self.start]

    def mean(self, values) -> np.ndarray:
        """(V, *S) per-voxel mean of per-point ``values`` (N, *S), in float64."""
        v = np.asarray(values, dtype=np.float64)[self.order]
        return np.add.reduceat(v, self.start, axis=0) / self.counts.reshape((-1,) + (1,) * (v.ndim - 1))


def voxel_groups(pts, voxel: float) -> VoxelGroups:
    """Group points by the cubic cell ``floor(p / voxel)`` of a grid anchored at the frame's origin.

    Args:
        pts: (N, 3) finite metres; voxel: cell side, metres (> 0).
    """
    p = as_points("pts", pts)
    if not voxel > 0:
        raise ValueError(f"voxel must be > 0 metres, got {voxel}")
    if len(p) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return VoxelGroups(empty, empty, empty)
    q = np.floor(p / voxel).astype(np.int64)
    q -= q.min(0)
    dims = q.max(0) + 1
    if math.prod(int(d) for d in dims) >= 1 << 62:
        raise ValueError(f"cloud too large for voxel {voxel} m: {dims.tolist()} cells")
    key = (q[:, 0] * dims[1] + q[:, 1]) * dims[2] + q[:, 2]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    start = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    counts = np.diff(np.r_[start, len(p)])
    return VoxelGroups(order, start, counts)


def voxel_downsample(pts, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """One point per occupied voxel: the centroid of its points.

    Args:
        pts: (N, 3) finite metres; voxel: cell side, metres (grid anchored at the frame's origin).
    Returns:
        centroids (V, 3) float64 and rep (V,) int64, the input index of each voxel's representative (its point
        of lowest index), for carrying per-point attributes; voxels in increasing cell-key order.
    """
    g = voxel_groups(pts, voxel)
    return g.mean(as_points("pts", pts)), g.rep


def apply_transform(T, pts) -> np.ndarray:
    """``T`` (4, 4) applied to numpy points (N, 3) -> (N, 3) float64; the same as
    ``coopmap.geometry.transform_points``, computed column by column (no BLAS call for a 3-wide matrix, which is
    several times slower on large clouds when the cores are busy)."""
    T = np.asarray(T, dtype=np.float64)
    p = np.asarray(pts)
    out = np.empty((len(p), 3), dtype=np.float64)
    for i in range(3):
        out[:, i] = p[:, 0] * T[i, 0] + p[:, 1] * T[i, 1] + p[:, 2] * T[i, 2] + T[i, 3]
    return out


def in_boxes(pts, boxes_pose, boxes_half_extent, margin: float = 0.0) -> np.ndarray:
    """Mask of the points inside at least one box grown by ``margin``: ``|inv(T_k) p| <= e_k + margin``.

    The points are sorted by x once; each box then tests only its x slice (as ``coopmap.metrics.points_in_boxes``).

    Args:
        pts: (N, 3) metres; boxes_pose: (K, 4, 4) T_frame_from_box (box frame: x along the length, y left, z up,
            origin at the centre), same frame as pts; boxes_half_extent: (K, 3) metres.
    Returns:
        (N,) bool.
    """
    p = as_points("pts", pts, finite=False)
    T, e = to_numpy(boxes_pose, np.float64), to_numpy(boxes_half_extent, np.float64)
    check_shape("boxes_pose", T, (None, 4, 4))
    check_shape("boxes_half_extent", e, (None, 3))
    if len(T) != len(e):
        raise ShapeError(f"{len(T)} box poses but {len(e)} half extents")
    inside = np.zeros(len(p), dtype=bool)
    if len(T) == 0 or len(p) == 0:
        return inside
    e = e + margin
    half = np.einsum("kij,kj->ki", np.abs(T[:, :3, :3]), e) + 1e-9  # axis-aligned half sizes
    order = np.argsort(p[:, 0], kind="stable")
    xs = p[order, 0]
    for k in range(len(T)):
        a = np.searchsorted(xs, T[k, 0, 3] - half[k, 0], "left")
        near = order[a:np.searchsorted(xs, T[k, 0, 3] + half[k, 0], "right")]
        near = near[np.all(np.abs(p[near] - T[k, :3, 3]) <= half[k], axis=1)]
        local = (p[near].astype(np.float64) - T[k, :3, 3]) @ T[k, :3, :3]  # rows R^T (p - t)
        inside[near[np.all(np.abs(local) <= e[k], axis=1)]] = True
    return inside


def _dilate(occ: np.ndarray) -> np.ndarray:
    """3x3x3 binary dilation of a boolean grid (separable: one pass per axis)."""
    for ax in range(3):
        out = occ.copy()
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        out[tuple(lo)] |= occ[tuple(hi)]
        out[tuple(hi)] |= occ[tuple(lo)]
        occ = out
    return occ


_NEIGHBOURS = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)], dtype=np.int64)


def support_counts(pts, others, cell: float = 0.4, dense: bool | None = None) -> np.ndarray:
    """For every point, how many of the other clouds have a point in its support cell or an adjacent one.

    Cells are ``floor(p / cell)`` (grid anchored at the frame's origin); "adjacent" = the 26 neighbours, so a
    point of another cloud within ``cell`` metres on every axis always counts and none farther than
    ``2 cell`` on some axis does. Each other cloud counts at most once per point.

    Args:
        pts: (N, 3) metres; others: sequence of (M_j, 3) clouds in the same frame; cell: metres (> 0).
        dense: force the dense-grid (True) or the sorted-keys (False) path; None picks dense when the grid over
            the points' bounding box has at most 2**25 cells. Both give the same counts.
    Returns:
        (N,) int64 in [0, len(others)].
    """
    p = as_points("pts", pts)
    if not cell > 0:
        raise ValueError(f"support cell must be > 0 metres, got {cell}")
    count = np.zeros(len(p), dtype=np.int64)
    if len(p) == 0 or not others:
        return count
    q = np.floor(p / cell).astype(np.int64)
    lo = q.min(0) - 1
    dims = q.max(0) - lo + 2  # one cell of padding on each side
    if dense is None:
        dense = math.prod(int(d) for d in dims) <= _MAX_DENSE_CELLS
    q -= lo
    for other in others:
        o = np.floor(as_points("other cloud", other) / cell).astype(np.int64) - lo
        o = o[np.all((o >= 0) & (o < dims), axis=1)]
        if dense:
            occ = np.zeros(tuple(int(d) for d in dims), dtype=bool)
            occ[o[:, 0], o[:, 1], o[:, 2]] = True
            count += _dilate(occ)[q[:, 0], q[:, 1], q[:, 2]]
        else:
            count += _sparse_hits(q, o, dims)
    return count


def _sparse_hits(q: np.ndarray, o: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """(N,) bool: cell q has an occupied cell of o within one cell (cells in [0, dims), padded by one)."""
    def pack(c):
        return (c[:, 0] * dims[1] + c[:, 1]) * dims[2] + c[:, 2]

    occupied = np.unique(pack(o))
    hit = np.zeros(len(q), dtype=bool)
    if len(occupied) == 0:
        return hit
    cells, inverse = np.unique(pack(q), return_inverse=True)
    cq = np.stack([cells // (dims[1] * dims[2]), (cells // dims[2]) % dims[1], cells % dims[2]], axis=1)
    found = np.zeros(len(cells), dtype=bool)
    for off in _NEIGHBOURS:  # the padding keeps every neighbour inside [0, dims)
        keys = pack(cq + off)
        pos = np.minimum(np.searchsorted(occupied, keys), len(occupied) - 1)
        found |= occupied[pos] == keys
    return found[inverse.reshape(-1)]


def multi_frame_support(pts, others, min_support: int, cell: float = 0.4, keep=None) -> np.ndarray:
    """Keep the points observed in at least ``min_support`` frames, the current frame counting as 1.

    support(p) = 1 + :func:`support_counts` (p, others, cell); points with ``keep`` True (e.g. inside the current
    vehicle boxes: the box rule of docs/filtering.md) are kept whatever their support.

    Args:
        pts: (N, 3) current frame, metres; others: the K history clouds already mapped into the current frame;
        min_support: frames needed (1 keeps everything); keep: optional (N,) bool forced-keep mask.
    Returns:
        (N,) bool keep mask.
    """
    p = as_points("pts", pts)
    forced = np.zeros(len(p), dtype=bool) if keep is None else np.asarray(keep, dtype=bool).reshape(-1)
    if len(forced) != len(p):
        raise ShapeError(f"keep mask has {len(forced)} entries for {len(p)} points")
    if min_support <= 1:
        return np.ones(len(p), dtype=bool)
    return (1 + support_counts(p, others, cell) >= min_support) | forced
