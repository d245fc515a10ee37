import math
import tracemalloc

import numpy as np
import pytest
import roma
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from coopmap.errors import ShapeError
from coopmap.metrics import chamfer_fscore, nn_distances

KEYS = {"chamfer", "chamfer_pred_to_gt", "chamfer_gt_to_pred", "precision", "recall", "fscore"}


def _chamfer_naive(pred, gt, threshold=0.5):
    """Brute-force float64 reference (all pairwise distances)."""
    D = cdist(np.asarray(pred, np.float64), np.asarray(gt, np.float64))
    d_pg, d_gp = D.min(1), D.min(0)
    p, r = float((d_pg < threshold).mean()), float((d_gp < threshold).mean())
    return {
        "chamfer": 0.5 * (d_pg.mean() + d_gp.mean()),
        "chamfer_pred_to_gt": d_pg.mean(),
        "chamfer_gt_to_pred": d_gp.mean(),
        "precision": p,
        "recall": r,
        "fscore": 2 * p * r / (p + r) if p + r else 0.0,
    }


def _clouds(n, m, seed, spread=5.0):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(-spread, spread, (m, 3))
    pred = gt[rng.integers(0, m, n)] + rng.normal(0, 0.4, (n, 3))
    return pred, gt


def _assert_same(a, b, atol=1e-9):
    assert set(a) == set(b) == KEYS
    for k in KEYS:
        assert a[k] == pytest.approx(b[k], abs=atol), k


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.1, 0.5, 2.0])
def test_equals_brute_force(seed, threshold):
    pred, gt = _clouds(400, 250, seed)
    _assert_same(chamfer_fscore(pred, gt, threshold), _chamfer_naive(pred, gt, threshold))


def test_float32_torch_and_large_coordinates():
    pred, gt = _clouds(300, 200, 7)
    pred, gt = pred + [45.0, -48.0, 2.0], gt + [45.0, -48.0, 2.0]
    ref = _chamfer_naive(pred.astype(np.float32), gt.astype(np.float32))
    _assert_same(chamfer_fscore(torch.as_tensor(pred, dtype=torch.float32), gt.astype(np.float32)), ref)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 60), st.integers(1, 60), st.integers(0, 10_000), st.floats(0.05, 3.0))
def test_property_matches_brute_force(n, m, seed, threshold):
    pred, gt = _clouds(n, m, seed, spread=2.0)
    _assert_same(chamfer_fscore(pred, gt, threshold, chunk=7), _chamfer_naive(pred, gt, threshold))


def test_degenerate_clouds_flat_and_duplicated():
    rng = np.random.default_rng(3)
    flat = np.c_[rng.uniform(-3, 3, (200, 2)), np.zeros(200)]  # zero extent in z
    _assert_same(chamfer_fscore(flat[:120], flat), _chamfer_naive(flat[:120], flat))
    same = np.ones((50, 3))
    out = chamfer_fscore(same, same)
    assert out["chamfer"] == 0.0 and out["fscore"] == 1.0


def test_known_closed_form():
    gt = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    pred = np.array([[0.3, 0, 0], [10.0, 0.0, 0.8]])
    out = chamfer_fscore(pred, gt, threshold=0.5)
    assert out["chamfer_pred_to_gt"] == pytest.approx(0.55, abs=1e-12)
    assert out["chamfer_gt_to_pred"] == pytest.approx(0.55, abs=1e-12)
    assert (out["precision"], out["recall"], out["fscore"]) == (0.5, 0.5, 0.5)


def test_rigid_invariance():
    pred, gt = _clouds(500, 300, 11)
    R = roma.random_rotmat(1, dtype=torch.float64)[0].numpy()
    t = np.array([30.0, -12.0, 4.0])
    a = chamfer_fscore(pred, gt)
    b = chamfer_fscore(pred @ R.T + t, gt @ R.T + t)
    _assert_same(a, b, atol=1e-9)


@pytest.mark.parametrize("chunk", [5, 13, 256, 10**6])
def test_chunked_equals_unchunked(chunk):
    pred, gt = _clouds(700, 300, 5)
    _assert_same(chamfer_fscore(pred, gt, chunk=chunk), chamfer_fscore(pred, gt, chunk=10**7), atol=1e-12)


def test_nn_distances_match_brute_force_in_query_order():
    pred, gt = _clouds(333, 111, 2)
    np.testing.assert_allclose(nn_distances(pred, gt, chunk=50), cdist(pred, gt).min(1), atol=1e-12, rtol=0)
    assert np.isinf(nn_distances(pred, np.zeros((0, 3)))).all()


def test_empty_clouds():
    gt = np.zeros((5, 3))
    out = chamfer_fscore(np.zeros((0, 3)), gt)
    assert (out["recall"], out["fscore"]) == (0.0, 0.0)
    assert math.isnan(out["chamfer"]) and math.isnan(out["precision"])
    assert all(math.isnan(v) for v in chamfer_fscore(gt, np.zeros((0, 3))).values())


def test_input_errors():
    with pytest.raises(ShapeError, match="pred"):
        chamfer_fscore(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="not finite"):
        chamfer_fscore(np.array([[0.0, np.nan, 0.0]]), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="threshold"):
        chamfer_fscore(np.zeros((4, 3)), np.zeros((4, 3)), threshold=0.0)
    with pytest.raises(ValueError, match="chunk"):
        chamfer_fscore(np.zeros((4, 3)), np.zeros((4, 3)), chunk=0)


def test_chunk_bounds_numpy_memory():
    """The temporaries of the search grow with the chunk, not with the number of points (tracemalloc)."""
    rng = np.random.default_rng(0)
    pred, gt = rng.uniform(-50, 50, (200_000, 3)), rng.uniform(-50, 50, (50_000, 3))
    peaks = {}
    for chunk in (4096, 200_000):
        tracemalloc.start()
        chamfer_fscore(pred, gt, chunk=chunk)
        peaks[chunk] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    n = len(pred) + len(gt)
    assert peaks[4096] < 40 * n  # documented: ~26 bytes per point + ~120 bytes per chunk point
    assert peaks[200_000] > peaks[4096] + 50 * 200_000


def _proc_status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))


@pytest.mark.slow
def test_five_million_points_stay_under_the_documented_bound():
    """docs/metrics.md: ~30 bytes per point + 64 bytes per chunk query above the inputs (Linux peak RSS)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak to the current resident size
    except OSError:
        pytest.skip("needs Linux /proc/self/clear_refs")
    rng = np.random.default_rng(0)
    pred = rng.uniform([-50, -50, -3], [50, 50, 4], (5_000_000, 3))
    gt = rng.uniform([-50, -50, -3], [50, 50, 4], (300_000, 3))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    rss0 = _proc_status("VmRSS:")
    out = chamfer_fscore(pred, gt)
    extra = _proc_status("VmHWM:") - rss0
    bound = 40 * (len(pred) + len(gt)) + 64 * (1 << 18) + (16 << 20)
    assert extra < bound, f"{extra / 2**20:.0f} MB above the inputs, bound {bound / 2**20:.0f} MB"
    assert 0 < out["chamfer"] < 1
