"""Each filter on a hand-made cloud removes exactly the points it should."""

import numpy as np
import pytest
from filter_scenes import rigid

from coopmap.errors import ShapeError
from coopmap.filtering import filters as F


def test_range_crop_keeps_exactly_the_box_bounds_included():
    axis = np.arange(-60.0, 61.0, 5.0)  # 25 values, 21 of them in [-50, 50]
    x, y = np.meshgrid(axis, axis, indexing="ij")
    z_vals = np.array([-4.0, -3.0, 0.0, 4.0, 4.5])  # 3 in [-3, 4]
    pts = np.array([(a, b, c) for a, b in zip(x.ravel(), y.ravel()) for c in z_vals])
    keep = F.range_crop(pts, (-50, 50), (-50, 50), (-3, 4))
    assert keep.sum() == 21 * 21 * 3
    assert F.range_crop(pts, (-50, 50), (-50, 50), None).sum() == 21 * 21 * 5
    assert keep[np.flatnonzero((pts == [50.0, -50.0, 4.0]).all(1))].all()


def test_height_band_keeps_exactly_the_points_inside_it():
    heights = np.arange(-8, 25) * 0.25  # -2.0 .. 6.0 m above the ground, 33 values
    T_ego_from_L = rigid(0.0, (-0.5, 0.0, 2.0))
    pts_L = np.c_[np.linspace(-20, 20, 33), np.zeros(33), heights - 2.0]
    keep = F.height_band(pts_L, T_ego_from_L, z_min=-0.5, z_max=4.0)
    np.testing.assert_array_equal(keep, (heights >= -0.5) & (heights <= 4.0))
    assert keep.sum() == 19  # -0.5, -0.25, ..., 4.0, bounds included
    assert F.height_band(pts_L, T_ego_from_L, None, 4.0).sum() == 25
    assert F.height_band(pts_L, T_ego_from_L, None, None).all()
    np.testing.assert_allclose(F.heights_above_ground(pts_L, T_ego_from_L), heights)


def test_height_band_uses_the_ego_frame_rotation():
    # the LiDAR pitched by 90 deg: its x axis points up, so height = x + 1.9
    T = np.array([[0, 0, -1, 0], [0, 1, 0, 0], [1, 0, 0, 1.9], [0, 0, 0, 1.0]])
    pts = np.array([[2.0, 0, 0], [2.2, 0, 0], [-2.3, 0, 0], [-2.5, 0, 0]])
    np.testing.assert_array_equal(F.height_band(pts, T, -0.5, 4.0), [True, False, True, False])


def test_confidence_percentile_exact_counts():
    conf = np.random.default_rng(0).permutation(np.arange(1.0, 101.0))
    keep = F.confidence_percentile(conf, 25)  # threshold 25.75 (linear interpolation)
    assert keep.sum() == 75 and conf[keep].min() == 26.0
    assert F.confidence_percentile(conf, 0).all()
    assert F.confidence_percentile(np.full(10, 3.0), 50).all()  # ties at the threshold are kept
    with pytest.raises(ValueError):
        F.confidence_percentile(conf, 101)


def test_sor_removes_planted_isolated_outliers_and_keeps_a_dense_plane():
    g = np.arange(50) * 0.1
    x, y = np.meshgrid(g, g, indexing="ij")
    plane = np.c_[x.ravel(), y.ravel(), np.zeros(2500)]
    outliers = np.array([[2.0, 2.0, 3.0], [-3.0, 1.0, 0.0], [8.0, 8.0, 1.0], [2.5, -4.0, 2.0], [1.0, 1.0, -5.0]])
    pts = np.concatenate([plane, outliers])
    keep = F.statistical_outlier_removal(pts, k=16, std_ratio=2.0)
    assert keep[:2500].all() and not keep[2500:].any()
    assert F.statistical_outlier_removal(pts, k=0).all()
    assert F.statistical_outlier_removal(pts[:10], k=16).all()  # too few points for a statistic


def test_mean_knn_distance_on_a_regular_line():
    pts = np.c_[np.arange(11.0), np.zeros(11), np.zeros(11)]  # spacing 1 m
    d = F.mean_knn_distance(pts, 2)
    assert d[5] == pytest.approx(1.0) and d[0] == pytest.approx(1.5)


def test_voxel_downsample_centroids_and_representatives():
    pts = np.array([
        [0.01, 0.01, 0.01], [0.09, 0.05, 0.03], [0.05, 0.09, 0.02],  # voxel (0, 0, 0)
        [-0.05, 0.02, 0.02],  # voxel (-1, 0, 0): floor, not truncation
        [0.15, 0.15, 0.15], [0.17, 0.11, 0.13],  # voxel (1, 1, 1)
    ])
    cent, rep = F.voxel_downsample(pts, 0.1)
    assert len(cent) == 3
    np.testing.assert_array_equal(rep, [3, 0, 4])  # voxels in key order; lowest input index each
    np.testing.assert_allclose(cent, [pts[3], pts[:3].mean(0), pts[4:].mean(0)])
    g = F.voxel_groups(pts, 0.1)
    np.testing.assert_array_equal(g.counts, [1, 3, 2])
    np.testing.assert_allclose(g.mean(np.arange(6.0)), [3.0, 1.0, 4.5])
    assert len(F.voxel_downsample(np.zeros((0, 3)), 0.1)[0]) == 0
    with pytest.raises(ValueError):
        F.voxel_groups(pts, 0.0)


def test_in_boxes_rotated_box_and_margin():
    T = rigid(30.0, (10.0, 5.0, 0.0))
    e = np.array([[2.0, 1.0, 0.5]])
    local = np.array([[1.9, 0.9, 0.4], [2.1, 0.0, 0.0], [0.0, 1.15, 0.0], [0.0, 0.0, -0.6], [0, 0, 0]])
    pts = local @ T[:3, :3].T + T[:3, 3]
    np.testing.assert_array_equal(F.in_boxes(pts, T[None], e), [True, False, False, False, True])
    np.testing.assert_array_equal(F.in_boxes(pts, T[None], e, margin=0.2), [True, True, True, True, True])
    assert not F.in_boxes(pts, np.zeros((0, 4, 4)), np.zeros((0, 3))).any()
    with pytest.raises(ShapeError):
        F.in_boxes(pts, T[None], np.zeros((2, 3)))


def test_support_counts_adjacent_cells_only():
    cur = np.array([[0.5, 0.5, 0.5], [10.5, 0.5, 0.5]])  # cells (0,0,0) and (10,0,0) at cell 1 m
    near = np.array([[1.9, 0.5, 0.5]])  # cell 1: adjacent to the first point
    far = np.array([[2.1, 0.5, 0.5]])  # cell 2: not adjacent
    diag = np.array([[-0.5, 1.5, -0.5], [11.5, 1.5, 1.5]])  # diagonal neighbours of both
    for dense in (True, False):
        np.testing.assert_array_equal(F.support_counts(cur, [near, far, diag], 1.0, dense=dense), [2, 1])


def test_support_counts_dense_and_sparse_paths_agree():
    rng = np.random.default_rng(1)
    cur = rng.uniform(-5, 5, (3000, 3))
    others = [rng.uniform(-6, 6, (n, 3)) for n in (500, 2000, 0)]
    a = F.support_counts(cur, others, 0.4, dense=True)
    b = F.support_counts(cur, others, 0.4, dense=False)
    np.testing.assert_array_equal(a, b)
    assert a.max() <= 2 and a.min() >= 0 and 0 < a.mean() < 2


def test_multi_frame_support_min_support_and_forced_keep():
    cur = np.array([[0.5, 0.5, 0.5], [5.5, 5.5, 5.5], [9.5, 9.5, 9.5]])
    h1 = np.array([[0.6, 0.5, 0.5], [5.6, 5.5, 5.5]])
    h2 = np.array([[0.4, 0.5, 0.5]])
    np.testing.assert_array_equal(F.multi_frame_support(cur, [h1, h2], 3, 1.0), [True, False, False])
    np.testing.assert_array_equal(F.multi_frame_support(cur, [h1, h2], 2, 1.0), [True, True, False])
    np.testing.assert_array_equal(F.multi_frame_support(cur, [h1, h2], 3, 1.0, keep=[False, False, True]),
                                  [True, False, True])
    assert F.multi_frame_support(cur, [], 1, 1.0).all()
