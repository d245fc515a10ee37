"""Z-buffer projection and the occlusion test of fused LiDAR."""

import numpy as np

from coopmap.data.depth_gt import occlusion_filter, sparse_depth, zbuffer_depth

K = np.array([[100.0, 0, 50.0], [0, 100.0, 40.0], [0, 0, 1]])


def _at(u, v, z):
    return np.array([[(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z]])


def test_nearest_return_wins_and_pixel_centres_are_integers():
    pts = np.concatenate([_at(10.0, 20.0, 7.0), _at(10.3, 19.8, 5.0), _at(10.2, 20.4, 9.0),  # same pixel
                          _at(12.49, 3.0, 4.0), _at(12.5, 3.0, 6.0),  # pixel boundary at u = 12.5
                          _at(-0.6, 0.0, 2.0), _at(99.6, 5.0, 2.0), _at(5.0, 5.0, -3.0)])  # outside / behind
    depth = zbuffer_depth(pts, K, (100, 80))
    assert depth.dtype == np.float32 and depth.shape == (80, 100)
    assert depth[20, 10] == 5.0
    assert depth[3, 12] == 4.0 and depth[3, 13] == 6.0
    assert np.count_nonzero(depth) == 3


def test_occlusion_filter_hides_returns_behind_near_splats_only():
    depth = np.zeros((60, 60), np.float32)
    depth[10:20:2, 10:20:2] = 4.0  # a near surface, sparsely sampled: splat radius 100 * 0.1 / 4 = 2 px
    depth[15, 15] = 30.0  # a return from behind it (seen by another agent): hidden
    depth[11, 11] = 4.3  # the same surface, slightly farther (< 12 %): kept
    depth[40:50, 40] = np.linspace(20, 26, 10)  # a road seen at a grazing angle: 0.5 px splats hide nothing
    depth[30, 30] = 30.0  # an isolated far return
    out = occlusion_filter(depth, fx=100.0, radius=0.1, rel_tol=0.12)
    assert out[15, 15] == 0 and out[30, 30] == 30.0 and out[11, 11] == np.float32(4.3)
    np.testing.assert_array_equal(out[40:50, 40], depth[40:50, 40])
    assert np.count_nonzero(out) == np.count_nonzero(depth) - 1
    np.testing.assert_array_equal(occlusion_filter(depth, fx=100.0, radius=0.0), depth)


def test_sparse_depth_of_several_sources():
    a, b = _at(10, 10, 5.0), _at(10, 11, 20.0)
    d = sparse_depth([a, b], K, (100, 80), occlusion_radius=0.1)
    assert d[10, 10] == 5.0 and d[11, 10] == 0  # hidden by the 2-pixel splat of the near return
    assert sparse_depth([a, b], K, (100, 80))[11, 10] == 20.0
