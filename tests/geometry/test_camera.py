import numpy as np
import pytest
import torch

from coopmap.geometry import (
    carla_intrinsics,
    crop_intrinsics,
    depth_z_to_along_ray,
    depthmap_to_pts_cam,
    intrinsics_from_carla,
    intrinsics_to_carla,
    opv2v_intrinsics,
    pixel_grid,
    project,
    ray_directions,
    scale_intrinsics,
    unproject,
)


def test_carla_intrinsics_match_the_spec_and_ours_put_the_axis_at_the_geometric_centre():
    """CARLA writes cx = W/2 (pixel-edge coordinates); with pixel centres at integers that is (W - 1)/2."""
    K_yaml = carla_intrinsics(800, 600)
    assert K_yaml[0, 0] == K_yaml[1, 1] == pytest.approx(335.639852470912, abs=1e-9)
    assert (K_yaml[0, 2], K_yaml[1, 2]) == (400.0, 300.0)
    K = opv2v_intrinsics(800, 600)
    assert (K[0, 2], K[1, 2]) == (399.5, 299.5)
    np.testing.assert_array_equal(K, intrinsics_from_carla(K_yaml))
    np.testing.assert_array_equal(intrinsics_to_carla(K), K_yaml)
    np.testing.assert_array_equal(K[..., :2, :2], K_yaml[..., :2, :2])
    # batched and torch: same numbers
    Kt = intrinsics_from_carla(torch.tensor(np.stack([K_yaml, carla_intrinsics(8, 6)])))
    assert Kt[1, 0, 2].item() == 3.5 and Kt[1, 1, 2].item() == 2.5 and Kt[0, 0, 2].item() == 399.5


def test_the_optical_axis_meets_the_geometric_centre_of_an_odd_and_an_even_image():
    """Pixel centres at integers: the centre of a W-pixel row is (W - 1)/2, the centre pixel itself when W is odd."""
    for W, H in ((9, 7), (800, 600)):
        uv, _ = project(np.array([[0.0, 0.0, 5.0]]), opv2v_intrinsics(W, H))
        np.testing.assert_array_equal(uv[0], [(W - 1) / 2, (H - 1) / 2])


def test_point_straight_ahead_projects_to_principal_point():
    K = opv2v_intrinsics(800, 600)
    uv, z = project(np.array([[0.0, 0.0, 17.0]]), K)
    np.testing.assert_allclose(uv[0], [K[0, 2], K[1, 2]])
    assert z[0] == 17.0


@pytest.mark.parametrize("as_torch", [False, True])
def test_project_unproject_round_trip(as_torch):
    rng = np.random.default_rng(0)
    K = opv2v_intrinsics(800, 600)
    uv = rng.uniform([0, 0], [800, 600], (500, 2))
    d = rng.uniform(0.5, 120, 500)
    if as_torch:
        K, uv, d = (torch.as_tensor(a) for a in (K, uv, d))
    uv2, d2 = project(unproject(uv, d, K), K)
    np.testing.assert_allclose(np.asarray(uv2), np.asarray(uv), atol=1e-9)
    np.testing.assert_allclose(np.asarray(d2), np.asarray(d), atol=1e-12)


def test_pointmap_and_rays_follow_integer_pixel_centres():
    K = torch.tensor(opv2v_intrinsics(9, 7))  # (cx, cy) = (4, 3)
    depth = torch.full((2, 6, 8), 3.0, dtype=torch.float64)
    pts = depthmap_to_pts_cam(depth, K.expand(2, 3, 3))
    assert pts.shape == (2, 6, 8, 3)
    # pixel (u=4, v=3) is the principal point: on the optical axis
    torch.testing.assert_close(pts[0, 3, 4], torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64))
    u = 1
    torch.testing.assert_close(pts[1, 3, u, 0], (u - K[0, 2]) / K[0, 0] * 3.0)
    rays = ray_directions(K, 6, 8)
    torch.testing.assert_close(rays.norm(dim=-1), torch.ones(6, 8, dtype=torch.float64))
    along = depth_z_to_along_ray(depth[0], rays)
    torch.testing.assert_close(along, pts[0].norm(dim=-1))
    grid = pixel_grid(6, 8)
    assert grid[2, 5].tolist() == [5.0, 2.0]


def test_scaled_and_cropped_intrinsics_keep_projection_consistent():
    """A 3D point projects to u in the original image and to s(u+0.5)-0.5 in the resized one."""
    K = opv2v_intrinsics(800, 600)
    p = np.array([[2.0, -1.0, 9.0]])
    uv, _ = project(p, K)
    uv2, _ = project(p, scale_intrinsics(K, 0.5, 0.25))
    np.testing.assert_allclose(uv2[0], [0.5 * (uv[0, 0] + 0.5) - 0.5, 0.25 * (uv[0, 1] + 0.5) - 0.5])
    uv3, _ = project(p, crop_intrinsics(K, 10, 20))
    np.testing.assert_allclose(uv3[0], uv[0] - [10, 20])
