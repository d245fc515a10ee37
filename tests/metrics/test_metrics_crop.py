import numpy as np
import pytest

from coopmap.errors import ShapeError
from coopmap.geometry import opv2v_intrinsics
from coopmap.metrics import crop_range, frustum_mask, in_any_frustum


def test_crop_range_bounds_are_inclusive_and_z_optional():
    pts = np.array([[50.0, -50.0, 4.0], [50.01, 0, 0], [0, 0, -3.01], [0, 0, 100.0], [-50, 50, -3]])
    np.testing.assert_array_equal(crop_range(pts), [True, False, False, False, True])
    np.testing.assert_array_equal(crop_range(pts, z_range=None), [True, False, True, True, True])
    np.testing.assert_array_equal(crop_range(pts, (0, 1), (-1, 1), (-1, 1)), [False, False, False, False, False])


def test_frustum_mask_pixel_edges_and_behind():
    H, W = 6, 8
    K = opv2v_intrinsics(W, H)
    fx, cx, cy = K[0, 0], K[0, 2], K[1, 2]

    def at(u, v, z=10.0):
        return [(u - cx) / fx * z, (v - cy) / fx * z, z]

    pts = np.array([at(0, 0), at(-0.49, 2), at(-0.51, 2), at(W - 0.51, 2), at(W - 0.5, 2), at(3, H - 0.51),
                    at(3, H - 0.49), [0.0, 0.0, -5.0], [0.0, 0.0, 0.0]])
    got = frustum_mask(pts, np.eye(4), K, H, W)
    np.testing.assert_array_equal(got, [True, True, False, True, False, True, False, False, False])


def test_frustum_mask_uses_the_camera_pose():
    K = opv2v_intrinsics(8, 6)
    T_cam_from_frame = np.eye(4)
    T_cam_from_frame[:3, :3] = np.diag([-1.0, 1.0, -1.0])  # camera looking along -z of the frame
    pts = np.array([[0.0, 0, 5], [0.0, 0, -5]])
    np.testing.assert_array_equal(frustum_mask(pts, T_cam_from_frame, K, 6, 8), [False, True])


def test_in_any_frustum_is_the_union():
    K = opv2v_intrinsics(8, 6)
    back = np.eye(4)
    back[:3, :3] = np.diag([-1.0, 1.0, -1.0])
    pts = np.array([[0.0, 0, 5], [0.0, 0, -5], [50.0, 0, 0.1]])
    np.testing.assert_array_equal(in_any_frustum(pts, np.stack([np.eye(4), back]), K, 6, 8), [True, True, False])
    np.testing.assert_array_equal(in_any_frustum(pts, np.eye(4)[None], K[None], 6, 8), [True, False, False])
    with pytest.raises(ShapeError, match="K"):
        in_any_frustum(pts, np.stack([np.eye(4), back]), np.stack([K] * 3), 6, 8)
