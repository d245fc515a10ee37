"""Which metric columns the report shows first, which way each one improves, and how numbers are printed.

Only presentation lives here: every number on the page comes from the report's inputs.
"""

from __future__ import annotations

import math

#: the columns of the main metric table and of the bar charts, in this order (others go to "all columns").
KEY_METRICS = ("depth_abs_rel", "depth_rmse", "pose_abs_t", "pose_abs_r", "scale_err", "agent_pose_abs_t",
               "agent_refine_t", "sky_float_ratio", "unlabelled_depth_abs_rel", "lidar_float_ratio", "chamfer", "fscore",
               "floating_ratio", "vehicle_recall", "worst_pose_abs_t")
#: bar charts single vs coop (a subset of KEY_METRICS).
BAR_METRICS = ("depth_abs_rel", "pose_abs_t", "pose_abs_r", "scale_err", "sky_float_ratio", "chamfer", "fscore",
               "bev_iou", "vehicle_recall")
#: larger is better for these; counts (n_*) are neutral; everything else is an error (smaller is better).
HIGHER_BETTER = frozenset({"fscore", "precision", "recall", "bev_iou", "bev_precision", "bev_recall",
                           "vehicle_recall", "depth_delta1", "agent_refine_t", "agent_refine_r"})
#: units shown in table headers and axis labels.
UNITS = {"depth_rmse": "m", "depth_mae": "m", "pose_abs_t": "m", "pose_abs_r": "deg", "agent_pose_abs_t": "m",
         "agent_pose_abs_r": "deg", "chamfer": "m", "chamfer_pred_to_gt": "m", "chamfer_gt_to_pred": "m",
         "worst_pose_abs_t": "m", "input_agent_pose_abs_t": "m", "input_agent_pose_abs_r": "deg",
         "agent_refine_t": "m", "agent_refine_r": "deg"}


def base_metric(name: str) -> str:
    """``chamfer_before`` / ``d_chamfer`` / ``val/chamfer`` -> ``chamfer``."""
    name = name.rsplit("/", 1)[-1]
    if name.startswith("d_"):
        name = name[2:]
    for suffix in ("_before", "_after"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def direction(name: str) -> int:
    """+1 if larger values of the metric are better, -1 if smaller are, 0 for counts and unknown kinds."""
    m = base_metric(name)
    if m.startswith("n_") or m in ("rank", "step"):
        return 0
    return 1 if m in HIGHER_BETTER else -1


def label(name: str) -> str:
    """Column name with its unit, e.g. ``chamfer [m]``."""
    unit = UNITS.get(base_metric(name))
    return f"{name} [{unit}]" if unit else name


def fmt(value, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; integers as integers; NaN, None and non-numbers as '–'."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"  # 51,712 rather than 5.171e+04
    if v == int(v):
        return str(int(v))
    return f"{v:.{digits}g}"


def fmt_delta(value, digits: int = 3) -> str:
    """A signed difference (``+0.012``, ``-1.5``); '–' when not finite."""
    text = fmt(value, digits)
    if text == "–" or text.startswith("-"):
        return text
    return "+" + text


def to_float(text) -> float:
    """A CSV cell as float (NaN when empty or not a number)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def ordered_columns(columns, first=KEY_METRICS) -> list[str]:
    """``first`` (those present) then the remaining columns in their given order."""
    cols = list(dict.fromkeys(columns))
    return [c for c in first if c in cols] + [c for c in cols if c not in first]
