"""Point-cloud distances: Chamfer distance and precision / recall / F-score at a distance threshold.

Nearest neighbours come from a kd-tree (pykdtree) built on float32 copies of the clouds; the distance to the
returned neighbour is then recomputed in float64 from the caller's coordinates, so the results match a float64
brute force to ~1e-9 m (only an exact float32 tie between two neighbours can pick the other one, off by the float32
rounding of the coordinates, ~2e-6 m at 50 m). Before building the trees both clouds are reordered along a coarse
3D grid (a 16-bit cell key, radix-sorted): kd-tree queries in spatially coherent order run several times faster
than in random order, and the order does not change any result.

Memory: besides the caller's arrays, about ``30 bytes x (N + M)`` (float32 copies, sort keys and permutations,
kd-tree indices and nodes) plus about ``64 bytes x chunk`` for one chunk of queries (measured: 169 MB above the
inputs for 5M + 300k points at the default chunk; docs/metrics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pykdtree.kdtree import KDTree

from coopmap.metrics._arrays import as_points

#: queries per kd-tree call; bounds the per-chunk temporaries (~64 bytes per query point).
DEFAULT_CHUNK = 1 << 18
#: most cells of the ordering grid (keys fit uint16, so numpy's stable argsort is a radix sort).
_MAX_CELLS = (1 << 16) - 1
_TARGET_CELLS = 30_000


@dataclass(frozen=True)
class _Cloud:
    """A cloud prepared for the kd-tree: ``pts32[i] = pts[order[i]] - centre`` in float32."""

    pts: np.ndarray  # (N, 3) the caller's array (float32 or float64), original order
    order: np.ndarray  # (N,) int64 permutation into pts
    pts32: np.ndarray  # (N, 3) float32, centred, grid-ordered, C-contiguous


def _ordering_grid(lo: np.ndarray, hi: np.ndarray) -> tuple[float, np.ndarray]:
    """Cell size and cell counts of a grid over [lo, hi] with at most _MAX_CELLS cells."""
    ext = np.maximum(hi - lo, 1e-6)
    cell = float(np.prod(ext) / _TARGET_CELLS) ** (1.0 / 3.0)
    cell = max(cell, float(ext.max()) / _MAX_CELLS, 1e-6)
    while True:
        dims = np.maximum(np.ceil(ext / cell).astype(np.int64), 1)
        if int(np.prod(dims)) <= _MAX_CELLS:
            return cell, dims
        cell *= 1.25


def _prepare(pts: np.ndarray, lo, centre, cell, dims, chunk: int) -> _Cloud:
    """Grid-order the cloud and make its centred float32 copy, with chunk-bounded temporaries."""
    n = len(pts)
    key = np.empty(n, dtype=np.uint16)
    for s in range(0, n, chunk):
        q = ((pts[s : s + chunk] - lo) / cell).astype(np.int64)
        np.clip(q, 0, dims - 1, out=q)
        key[s : s + chunk] = (q[:, 0] * dims[1] + q[:, 1]) * dims[2] + q[:, 2]
    order = np.argsort(key, kind="stable")
    del key
    pts32 = np.empty((n, 3), dtype=np.float32)
    for s in range(0, n, chunk):
        pts32[s : s + chunk] = pts[order[s : s + chunk]] - centre
    return _Cloud(pts, order, pts32)


def _prepare_pair(a: np.ndarray, b: np.ndarray, chunk: int) -> tuple[_Cloud, _Cloud]:
    """Prepare two clouds with a shared centre and ordering grid."""
    lo = np.minimum(a.min(0), b.min(0)).astype(np.float64)
    hi = np.maximum(a.max(0), b.max(0)).astype(np.float64)
    cell, dims = _ordering_grid(lo, hi)
    centre = (lo + hi) / 2.0
    return _prepare(a, lo, centre, cell, dims, chunk), _prepare(b, lo, centre, cell, dims, chunk)


def _exact_dist(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distance in float64. (K, 3), (K, 3) -> (K,)."""
    d = p.astype(np.float64, copy=False) - q
    return np.sqrt(np.einsum("ij,ij->i", d, d))


def _directed(query: _Cloud, data: _Cloud, threshold: float, chunk: int, out: np.ndarray | None = None):
    """Sum of nearest-neighbour distances query -> data, and how many are below ``threshold``.

    If ``out`` (N,) is given, the per-point distances are written there in the query's original order.
    """
    tree = KDTree(data.pts32)
    total, within = 0.0, 0
    for s in range(0, len(query.pts32), chunk):
        _, idx = tree.query(query.pts32[s : s + chunk], k=1, sqr_dists=True)
        rows = query.order[s : s + chunk]
        d = _exact_dist(query.pts[rows], data.pts[data.order[idx]])
        total += float(d.sum())
        within += int(np.count_nonzero(d < threshold))
        if out is not None:
            out[rows] = d
    return total, within


def _check_chunk(chunk: int) -> int:
    if int(chunk) < 1:
        raise ValueError(f"chunk must be a positive number of query points, got {chunk}")
    return int(chunk)


def nn_distances(query, data, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Distance from every query point to its nearest data point.

    Args:
        query: (N, 3) points; data: (M, 3) points, same frame, metres.
        chunk: kd-tree queries per call (bounds memory).
    Returns:
        (N,) float64 metres, in the query's order; all inf if ``data`` is empty.
    """
    q, d = as_points("query", query), as_points("data", data)
    chunk = _check_chunk(chunk)
    out = np.full(len(q), np.inf)
    if len(q) and len(d):
        cq, cd = _prepare_pair(q, d, chunk)
        _directed(cq, cd, 0.0, chunk, out=out)
    return out


def chamfer_fscore(pred, gt, threshold: float = 0.5, chunk: int = DEFAULT_CHUNK) -> dict[str, float]:
    """Chamfer distance and precision / recall / F-score of a predicted cloud against a ground-truth cloud.

    - ``chamfer_pred_to_gt``: mean over predicted points of the distance to the nearest GT point (metres);
      ``chamfer_gt_to_pred`` the reverse; ``chamfer`` = their mean.
    - ``precision``: fraction of predicted points with a GT point closer than ``threshold`` (strictly);
      ``recall``: fraction of GT points with a predicted point closer than ``threshold``;
      ``fscore`` = 2 P R / (P + R) (0 when both are 0).

    Empty clouds: with no GT point every value is NaN (nothing to evaluate against); with GT points but no
    prediction, the distances and precision are NaN, recall and fscore 0.

    Args:
        pred: (N, 3) and gt: (M, 3) finite points in the same frame, metres (numpy or torch; float32 or float64).
        threshold: metres.
        chunk: kd-tree queries per call; memory grows with it, results do not change.
    Returns:
        dict of floats with keys chamfer, chamfer_pred_to_gt, chamfer_gt_to_pred, precision, recall, fscore.
    """
    p, g = as_points("pred", pred), as_points("gt", gt)
    chunk = _check_chunk(chunk)
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 metres, got {threshold}")
    nan = math.nan
    if len(g) == 0:
        return dict.fromkeys(_KEYS, nan)
    if len(p) == 0:
        return {**dict.fromkeys(_KEYS, nan), "recall": 0.0, "fscore": 0.0}
    cp, cg = _prepare_pair(p, g, chunk)
    sum_pg, n_pg = _directed(cp, cg, threshold, chunk)
    sum_gp, n_gp = _directed(cg, cp, threshold, chunk)
    d_pg, d_gp = sum_pg / len(p), sum_gp / len(g)
    prec, rec = n_pg / len(p), n_gp / len(g)
    f = 2.0 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return {
        "chamfer": 0.5 * (d_pg + d_gp),
        "chamfer_pred_to_gt": d_pg,
        "chamfer_gt_to_pred": d_gp,
        "precision": prec,
        "recall": rec,
        "fscore": f,
    }


_KEYS = ("chamfer", "chamfer_pred_to_gt", "chamfer_gt_to_pred", "precision", "recall", "fscore")
