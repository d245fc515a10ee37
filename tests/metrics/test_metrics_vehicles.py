import math

import numpy as np
import pytest
import roma
import torch

from coopmap.errors import ShapeError
from coopmap.metrics import points_in_boxes, vehicle_recall


def _box(t, yaw_deg=0.0):
    T = np.eye(4)
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = t
    return T


def test_counts_match_brute_force_for_rotated_boxes():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-20, 20, (5000, 3))
    K = 12
    poses = np.tile(np.eye(4), (K, 1, 1))
    poses[:, :3, :3] = roma.random_rotmat(K, dtype=torch.float64).numpy()
    poses[:, :3, 3] = rng.uniform(-15, 15, (K, 3))
    ext = rng.uniform(0.5, 4.0, (K, 3))
    got = points_in_boxes(pts, poses, ext, margin=0.2)
    local = np.einsum("kji,knj->kni", poses[:, :3, :3], pts[None] - poses[:, None, :3, 3])
    expected = np.all(np.abs(local) <= ext[:, None] + 0.2, axis=-1).sum(1)
    np.testing.assert_array_equal(got, expected)
    assert expected.sum() > 0


def test_margin_and_min_points_closed_cases():
    e = np.array([2.0, 1.0, 0.8])
    inside = np.array([[0.0, 0.0, 0.0]] * 9 + [[2.1, 0.0, 0.0]])  # the 10th point is 0.1 m beyond the box
    side = np.array([[10.0, 1.5, 0.0]])  # inside the yawed box only (its length runs along world y)
    pts = np.concatenate([inside + [10, 0, 0], side, inside[:9] + [-10, 5, 0]])
    boxes = np.stack([_box([10, 0, 0], 90.0), _box([10, 0, 0]), _box([-10, 5, 0])])
    exts = np.stack([e, e, e])
    np.testing.assert_array_equal(points_in_boxes(pts, boxes, exts), [10, 9, 9])
    np.testing.assert_array_equal(points_in_boxes(pts, boxes, exts, margin=0.2), [10, 10, 9])
    assert vehicle_recall(pts, boxes[1:], exts[1:], margin=0.2, min_points=10) == 0.5
    assert vehicle_recall(pts, boxes[1:], exts[1:], margin=0.0, min_points=10) == 0.0
    assert vehicle_recall(pts, boxes[1:], exts[1:], margin=0.0, min_points=9) == 1.0


def test_no_boxes_or_no_points():
    assert math.isnan(vehicle_recall(np.zeros((5, 3)), np.zeros((0, 4, 4)), np.zeros((0, 3))))
    assert vehicle_recall(np.zeros((0, 3)), _box([0, 0, 0])[None], np.ones((1, 3))) == 0.0
    with pytest.raises(ShapeError):
        vehicle_recall(np.zeros((5, 3)), _box([0, 0, 0])[None], np.ones((2, 3)))
