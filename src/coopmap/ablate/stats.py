"""Verdicts that survive a change of seed: paired bootstrap over frames, per seed, and the spread over seeds.

An improvement (``variant``) is compared with its predecessor on the metric it targets, frame by frame: both were
evaluated on the same test frames, so the per-frame differences ``d = variant - predecessor`` are paired.

- Per seed s, a percentile bootstrap of the mean of d over frames gives a confidence interval ``CI_s``.
- The seed-mean difference ``D = mean_s(mean d_s)`` and the seed spread ``S = std_s(mean d_s)`` (ddof 1).
- **win**: at least 2 seeds, every ``CI_s`` excludes 0 on the improving side, and ``|D| > S``;
  **loss**: the same on the worsening side; otherwise **no evidence**.
- **inconclusive** (overrides the above): neither the variant nor the predecessor beats the trivial references
  (identity poses, every agent at the ego origin, constant depth: whichever trivialises what the metric measures),
  i.e. whatever the difference, neither has learnt the thing the metric measures. "Beats" is judged like a win,
  not on the means: paired by frame with the reference (evaluated on the same frames), every seed's interval of
  ``side - reference`` lies on the better side (:func:`beats_on_every_seed`), for every trivial reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

WIN, LOSS, NO_EVIDENCE, INCONCLUSIVE = "win", "loss", "no evidence", "inconclusive"


def bootstrap_mean_ci(diff: Sequence[float], n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``diff`` (N,) and its percentile-bootstrap ``level`` interval (resampling the N values).

    Returns (mean, lo, hi); NaNs for an empty input. With one value the interval is that value.
    """
    d = np.asarray(diff, dtype=np.float64)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(d.mean()), float(lo), float(hi)


def paired_differences(variant: Mapping[tuple, float], predecessor: Mapping[tuple, float]) -> np.ndarray:
    """``variant[k] - predecessor[k]`` over the frame keys both have with finite values, in sorted key order."""
    keys = sorted(k for k in variant.keys() & predecessor.keys()
                  if math.isfinite(variant[k]) and math.isfinite(predecessor[k]))
    return np.array([variant[k] - predecessor[k] for k in keys], dtype=np.float64)


def beats_on_every_seed(diffs_per_seed: Sequence[np.ndarray], lower_is_better: bool, level: float = 0.95,
                        n_boot: int = 2000) -> bool:
    """Whether a side beats a reference: per seed, the frame differences ``side - reference`` have a bootstrap
    ``level`` interval strictly on the better side, on every seed (False with no seed or no finite frame)."""
    return on_better_side([bootstrap_mean_ci(d, n_boot, level, seed=i) for i, d in enumerate(diffs_per_seed)],
                          lower_is_better)


def on_better_side(cis: Sequence[tuple[float, float, float]], lower_is_better: bool) -> bool:
    """Whether there is an interval and every (mean, lo, hi) interval is finite and strictly below 0
    (``lower_is_better``) or strictly above 0."""
    sign = -1.0 if lower_is_better else 1.0
    return bool(cis) and all(math.isfinite(lo) and sign * lo > 0 and sign * hi > 0 for _, lo, hi in cis)


@dataclass(frozen=True)
class Judgement:
    verdict: str            # win | loss | no evidence | inconclusive
    mean_diff: float        # D: mean over seeds of the frame-mean difference (variant - predecessor)
    seed_spread: float      # S: std over seeds of the frame-mean differences (NaN with one seed)
    cis: tuple              # per seed: (mean, lo, hi) of the difference
    n_frames: int           # paired frames per seed (the smallest count)
    reason: str


def judge(diffs_per_seed: Sequence[np.ndarray], lower_is_better: bool, *, beats_trivial: tuple[bool, bool] | None,
          trivial_value: float | None = None, level: float = 0.95, n_boot: int = 2000) -> Judgement:
    """The verdict of the module docstring from per-seed paired frame differences (variant - predecessor).

    ``beats_trivial``: whether the variant, resp. the predecessor, beats every trivial reference of this metric
    and mode (:func:`beats_on_every_seed`); None: no trivial reference applies. ``trivial_value``: the best
    reference's value, for the reason text only.
    """
    cis = tuple(bootstrap_mean_ci(d, n_boot, level, seed=i) for i, d in enumerate(diffs_per_seed))
    seed_means = np.array([c[0] for c in cis], dtype=np.float64)
    n_frames = min((int(np.isfinite(d).sum()) for d in diffs_per_seed), default=0)
    D = float(np.nanmean(seed_means)) if len(seed_means) and np.isfinite(seed_means).any() else math.nan
    S = float(np.nanstd(seed_means, ddof=1)) if np.isfinite(seed_means).sum() >= 2 else math.nan
    if beats_trivial is not None and not any(beats_trivial):
        ref = "" if trivial_value is None else f" ({trivial_value:.4g})"
        return Judgement(INCONCLUSIVE, D, S, cis, n_frames,
                         f"neither side beats the trivial reference{ref} on every seed's frames")
    if not math.isfinite(D) or n_frames == 0:
        return Judgement(NO_EVIDENCE, D, S, cis, n_frames, "no paired frames with finite values")
    if len(cis) < 2:
        return Judgement(NO_EVIDENCE, D, S, cis, n_frames, "one seed: a difference cannot be told from seed noise")
    improving, worsening = on_better_side(cis, lower_is_better), on_better_side(cis, not lower_is_better)
    level_txt = f"{level:.0%} CI"
    if (improving or worsening) and abs(D) > S:
        return Judgement(WIN if improving else LOSS, D, S, cis, n_frames,
                         f"every seed's {level_txt} excludes 0 and |D| > seed spread")
    if improving or worsening:
        return Judgement(NO_EVIDENCE, D, S, cis, n_frames, f"every seed's {level_txt} excludes 0, but |D| <= seed "
                                                           "spread")
    return Judgement(NO_EVIDENCE, D, S, cis, n_frames, f"some seed's {level_txt} includes 0 or points the other way")
