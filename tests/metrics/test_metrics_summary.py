import math

import pytest

from coopmap.metrics import aggregate, summarize


def test_summarize_closed_form_and_nan():
    s = summarize([float(v) for v in range(1, 11)] + [math.nan])
    assert s == pytest.approx({"mean": 5.5, "median": 5.5, "p90": 9.1, "count": 10})
    s = summarize([math.nan, math.nan])
    assert s["count"] == 0 and math.isnan(s["mean"])


def test_aggregate_groups_statuses_and_ignores_nan():
    rows = [
        {"mode": "single", "status": "ok", "chamfer": 1.0, "fscore": 0.5, "scenario": "a"},
        {"mode": "single", "status": "ok", "chamfer": 3.0, "fscore": math.nan, "scenario": "b"},
        {"mode": "single", "status": "skipped: no lidar"},
        {"mode": "coop", "chamfer": 0.5, "flag": True},
    ]
    out = aggregate(rows)
    assert list(out) == ["single", "coop"]
    assert (out["single"]["n_ok"], out["single"]["n_skipped"]) == (2, 1)
    assert out["single"]["chamfer/mean"] == 2.0 and out["single"]["chamfer/count"] == 2
    assert out["single"]["fscore/mean"] == 0.5 and out["single"]["fscore/count"] == 1
    assert "scenario/mean" not in out["single"] and "flag/mean" not in out["coop"]
    assert out["coop"]["chamfer/p90"] == 0.5 and out["coop"]["n_ok"] == 1
