import math

import numpy as np
import pytest

from coopmap.metrics import bev_metrics, bev_occupancy, bev_scores


def _cloud(seed, n=2000):
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-50, 50, (n, 2)), rng.uniform(0.0, 3.5, n)]


def test_grid_shape_and_cell_assignment():
    pts = np.array([[0.1, 0.1, 1.0], [0.79, 0.41, 1.0], [-0.01, 0.0, 1.0], [0.8, 0.0, 1.0]])
    g = bev_occupancy(pts, cell=0.4, x_range=(0.0, 0.8), y_range=(0.0, 1.2))
    assert g.shape == (2, 3)
    expected = np.zeros((2, 3), bool)
    expected[0, 0] = expected[1, 1] = True
    np.testing.assert_array_equal(g, expected)
    assert bev_occupancy(pts, x_range=(-50, 50), y_range=(-50, 50)).shape == (250, 250)


def test_height_band_relative_to_ground():
    z = np.array([0.29, 0.3, 2.99, 3.0, -1.0])
    pts = np.c_[np.arange(5) * 1.0 + 0.5, np.full(5, 0.5), z]
    g = bev_occupancy(pts, cell=1.0, x_range=(0, 5), y_range=(0, 1))
    np.testing.assert_array_equal(g[:, 0], [False, True, True, False, False])
    g = bev_occupancy(pts, cell=1.0, ground_z=-1.5, x_range=(0, 5), y_range=(0, 1))  # heights + 1.5
    np.testing.assert_array_equal(g[:, 0], [True, True, False, False, True])


def test_identical_clouds_iou_one_disjoint_zero():
    a = _cloud(0)
    assert bev_metrics(a, a.copy()) == {"iou": 1.0, "precision": 1.0, "recall": 1.0}
    left, right = a[a[:, 0] < -1], a[a[:, 0] > 1]
    assert bev_metrics(left, right) == {"iou": 0.0, "precision": 0.0, "recall": 0.0}


def test_closed_form_scores_and_empty():
    pred = np.zeros((4, 4), bool)
    gt = np.zeros((4, 4), bool)
    pred[0, 0] = pred[1, 1] = gt[1, 1] = gt[2, 2] = gt[3, 3] = True
    assert bev_scores(pred, gt) == pytest.approx({"iou": 0.25, "precision": 0.5, "recall": 1 / 3})
    out = bev_scores(np.zeros((4, 4), bool), np.zeros((4, 4), bool))
    assert all(math.isnan(v) for v in out.values())
    with pytest.raises(ValueError, match="shape"):
        bev_scores(pred, gt[:2])
    with pytest.raises(ValueError, match="cell"):
        bev_occupancy(np.zeros((1, 3)), cell=0.0)
