"""Timing helper shared by the benchmark scripts (imported from their own folder)."""

from __future__ import annotations

import math
import time


def best_time(fn, repeat: int):
    """(best wall-clock seconds over ``repeat`` calls of ``fn()``, the last call's result)."""
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out
