import math

import numpy as np
import pytest

from coopmap.errors import ShapeError
from coopmap.metrics import (
    floating_ratio,
    lidar_float_ratio,
    sky_below_ratio,
    sky_float_ratio,
    unlabelled_depth_errors,
)


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


def test_sky_below_ratio_ignores_pixels_that_are_no_point():
    dense = np.zeros((1, 2, 5))  # all sky
    pred = np.array([[[0.0, 0.0, 5.0, 5.0, 500.0], [np.nan, 5.0, 5.0, 5.0, 5.0]]])
    assert sky_below_ratio(pred, dense) == pytest.approx(6 / 10)  # depth 0 and NaN are masked, not "closer"
    is_point = np.ones_like(pred, dtype=bool)
    is_point[0, 1, 1:3] = False  # e.g. the model's own mask
    assert sky_below_ratio(pred, dense, is_point=is_point) == pytest.approx(4 / 10)
    assert sky_below_ratio(np.zeros_like(pred), dense) == 0.0  # the oracle: sky masked everywhere


def test_sky_float_ratio_counts_sky_points_above_z_max_among_all():
    pts = np.zeros((10, 3))
    pts[:, 2] = [5.0, 5.0, 5.0, 4.0, 1.0, 9.0, 9.0, 0.0, 0.0, 0.0]
    from_sky = np.array([1, 1, 0, 1, 1, 0, 1, 0, 0, 0], bool)
    assert sky_float_ratio(pts, from_sky) == pytest.approx(3 / 10)  # rows 0, 1, 6 (4.0 is not above)
    assert sky_float_ratio(pts, from_sky, z_max=2.0, ground_z=2.0) == pytest.approx(3 / 10)
    assert floating_ratio(pts) == pytest.approx(5 / 10)  # facades count there
    assert math.isnan(sky_float_ratio(np.zeros((0, 3)), np.zeros(0, bool)))
    with pytest.raises(ShapeError):
        sky_float_ratio(pts, from_sky[:5])


@pytest.mark.parametrize("dx, z_gt, supported", [(0.0, 3.01, True), (1.99, 3.5, True), (2.01, 3.5, False),
                                                 (0.0, 2.99, False), (1.2, 20.0, True)])
def test_lidar_float_ratio_radius_and_margin(dx, z_gt, supported):
    """One floater at (10, 5, 8) among 4 points; one GT LiDAR return dx metres away horizontally at z_gt."""
    pts = np.array([[10.0, 5.0, 8.0], [1.0, 0.0, 0.5], [2.0, 0.0, 0.5], [3.0, 0.0, 3.9]])
    ang = 0.7
    lidar = np.array([[10.0 + dx * math.cos(ang), 5.0 + dx * math.sin(ang), z_gt], [0.0, 0.0, 0.0]])
    expected = 0.0 if supported else 1 / 4
    assert lidar_float_ratio(pts, lidar, z_max=4.0, radius=2.0, margin=1.0) == expected
    assert lidar_float_ratio(pts, np.zeros((0, 3))) == 1 / 4  # no LiDAR at all: every floater counts
    assert lidar_float_ratio(pts, lidar, radius=100.0, margin=1.0) == (0.0 if z_gt > 3.0 else 1 / 4)
    assert math.isnan(lidar_float_ratio(np.zeros((0, 3)), lidar))


def test_lidar_float_ratio_matches_a_brute_force():
    rng = np.random.default_rng(1)
    pts = np.c_[rng.uniform(-30, 30, (2000, 2)), rng.uniform(-1, 12, 2000)]
    lidar = np.c_[rng.uniform(-30, 30, (500, 2)), rng.uniform(-2, 8, 500)]
    high, support = pts[pts[:, 2] > 4.0], lidar[lidar[:, 2] > 3.0]
    d = np.linalg.norm(high[:, None, :2] - support[None, :, :2], axis=-1).min(1)
    assert lidar_float_ratio(pts, lidar, margin=1.0) == np.count_nonzero(d > 2.0) / 2000


def test_unlabelled_depth_errors():
    dense = np.array([[10.0, 20.0, 0.0, 5.0], [4.0, 8.0, 0.0, 1.0]])
    labelled = np.array([[True, False, False, False], [False, False, False, True]])
    pred = np.array([[99.0, 25.0, 7.0, 0.0], [2.0, 8.0, 3.0, 50.0]])
    out = unlabelled_depth_errors(pred, dense, labelled)  # pixels (0,1), (0,3), (1,0), (1,1)
    assert out["abs_rel"] == pytest.approx((5 / 20 + 5 / 5 + 2 / 4 + 0) / 4)  # a masked pixel (0) has error 1
    assert out["mae"] == pytest.approx((5 + 5 + 2 + 0) / 4)
    assert math.isnan(unlabelled_depth_errors(pred, np.zeros_like(dense), labelled)["abs_rel"])
