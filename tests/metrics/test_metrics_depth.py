import math

import numpy as np
import pytest
import torch

from coopmap.errors import ShapeError
from coopmap.metrics import avg_dis, depth_metrics, metric_scale_abs_rel, scale_err


def _gt(seed=0, shape=(4, 6, 8)):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(2.0, 60.0, shape)
    valid = rng.random(shape) < 0.4
    return gt * valid, valid


def test_exact_prediction_has_zero_error():
    gt, valid = _gt()
    out = depth_metrics(gt, gt, valid)
    assert out == {"rmse": 0.0, "mae": 0.0, "abs_rel": 0.0, "delta1": 1.0}
    assert scale_err(gt, gt, valid) == 0.0


def test_global_scale_closed_form():
    gt, valid = _gt(1)
    pred = 1.25 * gt + 1000.0 * ~valid  # garbage on invalid pixels must not matter
    g = gt[valid]
    out = depth_metrics(pred, gt, valid)
    assert out["mae"] == pytest.approx(0.25 * g.mean(), rel=1e-12)
    assert out["rmse"] == pytest.approx(0.25 * math.sqrt((g**2).mean()), rel=1e-12)
    assert out["abs_rel"] == pytest.approx(0.25, abs=1e-12)
    assert scale_err(pred, gt, valid) == pytest.approx(0.25, abs=1e-12)
    assert depth_metrics(1.2 * gt, gt, valid)["delta1"] == 1.0
    assert depth_metrics(1.3 * gt, gt, valid)["delta1"] == 0.0
    assert depth_metrics(gt / 1.3, gt, valid)["delta1"] == 0.0


def test_scale_err_is_a_median_and_delta_rejects_negative_depth():
    gt = np.array([10.0, 10.0, 10.0, 10.0, 10.0])
    pred = np.array([5.0, 9.0, 12.0, 30.0, -10.0])  # ratios 0.5, 0.9, 1.2, 3, -1 -> median 0.9
    valid = np.ones(5, bool)
    assert scale_err(pred, gt, valid) == pytest.approx(0.1)
    assert depth_metrics(pred, gt, valid)["delta1"] == pytest.approx(2 / 5)
    assert depth_metrics(-gt, gt, valid)["delta1"] == 0.0


def test_torch_inputs_and_empty_and_shape_errors():
    gt, valid = _gt(2)
    out = depth_metrics(torch.as_tensor(gt * 1.1, dtype=torch.float32), torch.as_tensor(gt), torch.as_tensor(valid))
    assert out["abs_rel"] == pytest.approx(0.1, abs=1e-6)
    none = np.zeros_like(valid)
    assert all(math.isnan(v) for v in depth_metrics(gt, gt, none).values())
    assert math.isnan(scale_err(gt, gt, none))
    with pytest.raises(ShapeError, match="valid"):
        depth_metrics(gt, gt, valid[0])


def test_metric_scale_abs_rel_closed_form():
    rng = np.random.default_rng(3)
    pts = rng.normal(0, 20, (4, 6, 8, 3))
    valid = rng.random((4, 6, 8)) < 0.5
    s = np.linalg.norm(pts[valid], axis=-1).mean()
    assert avg_dis(pts, valid) == pytest.approx(s, rel=1e-12)
    assert metric_scale_abs_rel(1.25 * pts, pts, valid) == pytest.approx(0.25, abs=1e-12)
    assert metric_scale_abs_rel(0.8 * pts, pts, valid) == pytest.approx(0.2, abs=1e-12)
    assert math.isnan(metric_scale_abs_rel(pts, pts, np.zeros_like(valid)))
