"""Resize/crop: image resampling, intrinsics and dense depth stay consistent to sub-pixel precision."""

import numpy as np
import pytest

from coopmap.data.transforms import (
    check_resolution,
    plan_resize_crop,
    resize_crop_depth,
    resize_crop_image,
    resize_crop_intrinsics,
    resize_crop_nearest,
)
from coopmap.errors import ConfigError
from coopmap.geometry import opv2v_intrinsics, project


def test_plan_covers_then_centre_crops():
    plan = plan_resize_crop((800, 600), (518, 392))
    assert (plan.out_w, plan.out_h) == (518, 392)
    assert round(plan.src_w * plan.sx) >= 518 and round(plan.src_h * plan.sy) >= 392
    assert min(round(800 * plan.sx) - 518, round(600 * plan.sy) - 392) == 0  # one side is not cropped
    assert plan.sx == pytest.approx(plan.sy, rel=3e-3)


@pytest.mark.parametrize("src, out", [((800, 600), (518, 392)), ((800, 600), (224, 224)), ((200, 150), (392, 294)),
                                      ((200, 150), (196, 154))])
def test_a_blob_lands_where_the_new_intrinsics_project_its_point(src, out):
    """A smooth blob centred on the projection of a 3D point is found, after resizing, at the projection of the
    same point with the updated intrinsics (checks PIL's box semantics against scale/crop_intrinsics)."""
    W0, H0 = src
    K = opv2v_intrinsics(W0, H0)
    p = np.array([[1.3, -0.7, 10.0]])
    (u0, v0), = project(p, K)[0]
    yy, xx = np.mgrid[0:H0, 0:W0]
    sigma = 0.04 * W0
    img = (255 * np.exp(-((xx - u0) ** 2 + (yy - v0) ** 2) / (2 * sigma**2))).astype(np.uint8)
    rgb = np.repeat(img[..., None], 3, -1)
    plan = plan_resize_crop(src, out)
    small = resize_crop_image(rgb, plan)[..., 0].astype(np.float64)
    assert small.shape == (out[1], out[0])
    w = np.clip(small - 20, 0, None)
    yy, xx = np.mgrid[0:out[1], 0:out[0]]
    found = np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])
    (u1, v1), = project(p, resize_crop_intrinsics(K, plan))[0]
    np.testing.assert_allclose(found, [u1, v1], atol=0.05 * max(1.0, plan.sx))


def test_dense_depth_of_a_plane_is_exact_after_resizing():
    """Inverse-depth interpolation is exact on planes: compare with the analytic depth at output pixel centres."""
    W0, H0 = 400, 300
    K = opv2v_intrinsics(W0, H0)
    n, d = np.array([0.0, -1.0, -0.05]), -1.5  # plane n . X = d (a tilted ground 1.5 m below the camera)

    def plane_depth(K, W, H):
        v, u = np.mgrid[0:H, 0:W].astype(np.float64)
        rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
        z = d / (rays @ n)
        return np.where(z > 0, z, 0.0)

    plan = plan_resize_crop((W0, H0), (210, 154))
    got = resize_crop_depth(plane_depth(K, W0, H0), plan)
    want = plane_depth(resize_crop_intrinsics(K, plan), 210, 154)
    ok = (got > 0) & (want > 0) & (want < 100)  # rows next to the horizon (sky) use the nearest pixel
    assert ok.mean() > 0.3
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-5)


def test_nearest_never_blends():
    plan = plan_resize_crop((8, 6), (4, 4))
    grid = np.arange(48).reshape(6, 8)
    out = resize_crop_nearest(grid, plan)
    assert set(out.ravel().tolist()) <= set(grid.ravel().tolist())


def test_resolution_must_be_multiples_of_the_patch():
    assert check_resolution([518, 392], 14) == (518, 392)
    with pytest.raises(ConfigError, match="multiples of data.patch_size=16"):
        check_resolution([518, 392], 16)
    with pytest.raises(ConfigError, match=r"\[W, H\]"):
        check_resolution([518], 14)
