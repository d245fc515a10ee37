import math

import numpy as np
import pytest

from coopmap.metrics import floating_ratio, sky_below_ratio


def test_floating_ratio_counts_exactly_the_points_above_z_max():
    rng = np.random.default_rng(0)
    z = rng.uniform(-2.0, 10.0, 1000)
    z[:5] = 4.0  # exactly at z_max: not floating
    pts = np.c_[rng.normal(size=(1000, 2)), z]
    assert floating_ratio(pts) == np.count_nonzero(z > 4.0) / 1000
    assert floating_ratio(pts, z_max=2.0, ground_z=2.0) == np.count_nonzero(z > 4.0) / 1000
    assert floating_ratio(pts, z_max=100.0) == 0.0
    assert math.isnan(floating_ratio(np.zeros((0, 3))))


def test_sky_below_ratio():
    dense = np.full((2, 4, 5), 12.0)
    dense[:, 0] = 0.0  # 10 sky pixels
    pred = np.full((2, 4, 5), 30.0)
    pred[0, 0, :3] = 150.0
    pred[1, 0, 0] = np.inf
    assert sky_below_ratio(pred, dense) == pytest.approx(6 / 10)
    assert sky_below_ratio(pred, dense, max_dist=20.0) == 0.0
    assert math.isnan(sky_below_ratio(pred, np.ones_like(dense)))
