"""Ray casting: closed-form slab hits, and the culled camera / LiDAR casters against the naive reference."""

import numpy as np
import pytest

from coopmap.geometry import carla_to_matrix, opv2v_intrinsics
from coopmap.synth.boxes import GROUND_ID, SKY_ID, VEHICLE, make_boxes
from coopmap.synth.camera import camera_rays, cast_camera, pixel_directions
from coopmap.synth.config import CAMERA_MOUNTS, LIDAR_MOUNT, LidarSpec
from coopmap.synth.generate import build_world, frame_boxes
from coopmap.synth.lidar import cast_lidar, ray_grid
from coopmap.synth.poses import mount_pose, yaw_matrix
from coopmap.synth.raycast import cast_naive, ground_hits, ray_box_entry
from coopmap.synth.scene import MapFrame


def test_slab_entry_distance_and_face_closed_form():
    half = np.array([2.0, 1.0, 0.5])
    origin = np.array([-10.0, 0.2, 0.1])
    dirs = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [1.0, 0.1, 0.0], [0.0, 0.0, 1.0]])
    t, face = ray_box_entry(origin, tuple(dirs.T), half)
    # along +x: enters the -x face at x = -2, t = 8 (face code 2*0 + 0); away from the box: miss
    assert t[0] == pytest.approx(8.0) and face[0] == 0
    assert np.isinf(t[1])
    # slanted: enters at x = -2 where y = 0.2 + 0.8 = 1.0, exactly on the edge: still a hit at t = 8
    assert t[2] == pytest.approx(8.0)
    assert np.isinf(t[3])
    # from above, looking down: enters the +z face (outward normal +z: odd code 2*2 + 1) at t = 4.5
    t2, face2 = ray_box_entry(np.array([0.0, 0.0, 5.0]), (np.zeros(1), np.zeros(1), -np.ones(1)), half)
    assert t2[0] == pytest.approx(4.5) and face2[0] == 5


def test_box_behind_the_origin_is_not_hit():
    t, _ = ray_box_entry(np.array([10.0, 0.0, 0.0]), (np.ones(1), np.zeros(1), np.zeros(1)), np.ones(3))
    assert np.isinf(t[0])


def test_naive_cast_hits_rotated_box_at_analytic_range():
    # a 4 x 2 x 2 box yawed 90 deg at (20, 0, 1): seen along +x its near face is at x = 20 - 1 = 19
    boxes = make_boxes([[20.0, 0.0, 1.0]], yaw_matrix(90.0), [2.0, 1.0, 1.0], VEHICLE, [0.5, 0.5, 0.5])
    frame = MapFrame(0.0, np.zeros(3))
    dirs = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, -0.1], [1.0, 0.0, 0.5]])
    t, surface = cast_naive(np.array([0.0, 0.0, 1.0]), dirs, boxes, frame)
    assert t[0] == pytest.approx(19.0) and surface[0] == 0
    assert t[1] == pytest.approx(10.0) and surface[1] == GROUND_ID  # ground at z = 0: t = 1 / 0.1
    assert np.isinf(t[2]) and surface[2] == SKY_ID


@pytest.fixture(scope="module")
def world():
    scene, traffic = build_world(np.random.default_rng(5), agents=3, frames=2)
    poses, boxes = frame_boxes(scene, traffic, 0.1)
    own = len(boxes) - len(traffic)  # CAV 0's body, hidden from its own sensors
    return scene, boxes.select(np.arange(len(boxes)) != own), poses[0]


@pytest.mark.parametrize("k", range(4))
def test_culled_camera_cast_equals_naive_reference(world, k):
    scene, boxes, vehicle = world
    W, H = 96, 72
    K = opv2v_intrinsics(W, H)
    cords = mount_pose(vehicle, CAMERA_MOUNTS[k])
    hits = cast_camera(scene, boxes, cords, K, W, H)
    origin, _ = camera_rays(cords, K)
    t, surface = cast_naive(origin, hits.dirs.reshape(-1, 3), boxes, scene.frame)
    ref = np.where(np.isfinite(t), t, 0.0).reshape(H, W)
    np.testing.assert_allclose(hits.depth, ref, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(hits.surface, surface.reshape(H, W))
    assert (hits.surface >= 0).mean() > 0.05  # boxes are actually in view


def test_culled_lidar_cast_equals_naive_reference(world):
    scene, boxes, vehicle = world
    spec = LidarSpec(points_per_second=64 * 20 * 180)  # 180 azimuth steps keep the naive cast quick
    lidar_pose = mount_pose(vehicle, LIDAR_MOUNT)
    t, surface = cast_lidar(scene, boxes, lidar_pose, spec)
    T = carla_to_matrix(lidar_pose)
    t_ref, s_ref = cast_naive(T[:3, 3], ray_grid(spec).reshape(-1, 3) @ T[:3, :3].T, boxes, scene.frame)
    t_ref = np.where(t_ref <= spec.range, t_ref, np.inf).reshape(t.shape)
    s_ref = np.where(np.isfinite(t_ref), s_ref.reshape(t.shape), SKY_ID)
    np.testing.assert_allclose(t, t_ref, rtol=1e-12)
    np.testing.assert_array_equal(surface, s_ref)
    assert (surface >= 0).sum() > 500


def test_camera_renders_like_carla_with_the_optical_axis_through_the_image_centre():
    """A level camera h = 1.5 m above flat ground (closed form): the ground of pixel row v lies at z-depth
    h fy / (v - (H - 1)/2), the depth image is mirror-symmetric left-right, and rows v and H - 1 - v are the
    ground / sky pair around the horizon, which falls exactly between rows H/2 - 1 and H/2 (CARLA's geometric centre).
    """
    W, H, h = 80, 60, 1.5
    K = opv2v_intrinsics(W, H)
    origin, M = camera_rays([3.0, -2.0, h, 0.0, 37.0, 0.0], K)
    t = ground_hits(origin, pixel_directions(M, H, W), MapFrame(0.0, np.zeros(3)))
    v = np.arange(H, dtype=np.float64)[:, None]
    with np.errstate(divide="ignore"):
        want = np.where(v > (H - 1) / 2, h * K[1, 1] / (v - (H - 1) / 2), np.inf) * np.ones((1, W))
    np.testing.assert_allclose(t, want, rtol=1e-12)
    np.testing.assert_allclose(t, t[:, ::-1], rtol=1e-12)
    assert np.isinf(t[: H // 2]).all() and np.isfinite(t[H // 2:]).all()
