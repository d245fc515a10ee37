"""Aggregation of per-sample metric rows into per-mode summaries (mean / median / p90, NaN ignored)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping

import numpy as np


def summarize(values: Iterable[float]) -> dict[str, float]:
    """mean, median, p90 (linear interpolation) and count of the finite values; NaN stats when none is finite."""
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"mean": math.nan, "median": math.nan, "p90": math.nan, "count": 0}
    return {"mean": float(x.mean()), "median": float(np.median(x)), "p90": float(np.percentile(x, 90)),
            "count": int(x.size)}


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def aggregate(rows: Iterable[Mapping], group_key: str = "mode", status_key: str = "status") -> dict[str, dict]:
    """Per-group summaries of metric rows.

    A row is a flat mapping: ``group_key`` (e.g. ``"single"`` / ``"coop"``; rows without it go to ``"all"``),
    optionally ``status_key`` (``"ok"`` or anything else = skipped, e.g. ``"skipped: no LiDAR"``; missing = ok)
    and numeric metric columns. Non-numeric columns (ids, paths) are ignored. NaN values (metric undefined for
    that sample) are left out of the statistics of their column only.

    Returns:
        ``{group: {"n_ok": int, "n_skipped": int, "<metric>/mean": float, "<metric>/median": float,
        "<metric>/p90": float, "<metric>/count": int}}``, groups and metrics in first-seen order.
    """
    groups: dict[str, dict] = {}
    columns: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        g = str(row.get(group_key, "all"))
        out = groups.setdefault(g, {"n_ok": 0, "n_skipped": 0})
        cols = columns.setdefault(g, {})
        if str(row.get(status_key, "ok")) != "ok":
            out["n_skipped"] += 1
            continue
        out["n_ok"] += 1
        for k, v in row.items():
            if k not in (group_key, status_key) and _is_number(v):
                cols.setdefault(k, []).append(float(v))
    for g, cols in columns.items():
        for k, vals in cols.items():
            groups[g].update({f"{k}/{stat}": s for stat, s in summarize(vals).items()})
    return groups
