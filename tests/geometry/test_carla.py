"""CARLA / OPV2V conventions: the numbers of ../shared/specs/opv2v.md sections 3-4."""

import numpy as np
import pytest

from coopmap.geometry import (
    F_FLIP,
    P_UE_FROM_CV,
    box_corners_world,
    box_pose_rh,
    camera_pose_rh,
    carla_to_matrix,
    lidar_points_to_camera_cv,
    lidar_to_camera_ue,
    points_lh_to_rh,
    sensor_pose_rh,
    x1_to_x2,
)


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _random_poses(rng, n):
    xyz = rng.uniform(-500, 500, (n, 3))
    ang = rng.uniform(-180, 180, (n, 3))
    return np.concatenate([xyz, ang], axis=1)


def test_x_to_world_equals_rz_ry_rx_on_random_poses():
    rng = np.random.default_rng(0)
    poses = _random_poses(rng, 200)
    T = carla_to_matrix(poses)
    for pose, Ti in zip(poses, T):
        roll, yaw, pitch = np.deg2rad(pose[3:])
        expected = _rz(yaw) @ _ry(-pitch) @ _rx(-roll)
        np.testing.assert_allclose(Ti[:3, :3], expected, atol=1e-12)
        np.testing.assert_allclose(Ti[:3, 3], pose[:3])
        np.testing.assert_allclose(Ti[3], [0, 0, 0, 1])
    np.testing.assert_allclose(np.linalg.det(T[:, :3, :3]), 1.0, atol=1e-12)


def test_yaw_90_turns_forward_axis_to_world_y():
    T = carla_to_matrix([0, 0, 0, 0, 90, 0])
    np.testing.assert_allclose(T[:3, 0], [0, 1, 0], atol=1e-12)  # forward column


def test_x1_to_x2_round_trips_and_maps_points():
    rng = np.random.default_rng(1)
    p1, p2 = _random_poses(rng, 50), _random_poses(rng, 50)
    T12, T21 = x1_to_x2(p1, p2), x1_to_x2(p2, p1)
    np.testing.assert_allclose(T12 @ T21, np.broadcast_to(np.eye(4), T12.shape), atol=1e-9)
    pts = rng.normal(size=(50, 3))
    world = (carla_to_matrix(p1)[:, :3, :3] @ pts[..., None])[..., 0] + p1[:, :3]
    in2 = (T12[:, :3, :3] @ pts[..., None])[..., 0] + T12[:, :3, 3]
    back = (carla_to_matrix(p2)[:, :3, :3] @ in2[..., None])[..., 0] + p2[:, :3]
    np.testing.assert_allclose(back, world, atol=1e-9)


def test_handedness_change_gives_det_plus_one_for_cameras_and_sensors():
    rng = np.random.default_rng(2)
    poses = _random_poses(rng, 100)
    assert np.allclose(np.linalg.det(carla_to_matrix(poses) @ P_UE_FROM_CV), -1.0)  # the trap
    np.testing.assert_allclose(np.linalg.det(camera_pose_rh(poses)[:, :3, :3]), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(sensor_pose_rh(poses)[:, :3, :3]), 1.0, atol=1e-12)
    assert np.linalg.det(F_FLIP[:3, :3]) == -1.0


def test_camera_pose_rh_maps_the_same_physical_point():
    """A point seen by the camera lands, in the RH world, on F times its CARLA world position."""
    rng = np.random.default_rng(3)
    cords = _random_poses(rng, 20)
    pts_cv = rng.uniform(1, 20, (20, 3))
    pts_ue = pts_cv[:, [2, 0, 1]] * np.array([1, 1, -1])  # UE_x = cv_z, UE_y = cv_x, UE_z = -cv_y
    world_lh = (carla_to_matrix(cords)[:, :3, :3] @ pts_ue[..., None])[..., 0] + cords[:, :3]
    T = camera_pose_rh(cords)
    world_rh = (T[:, :3, :3] @ pts_cv[..., None])[..., 0] + T[:, :3, 3]
    np.testing.assert_allclose(world_rh, points_lh_to_rh(world_lh), atol=1e-9)


def test_yaw_negates_in_the_right_handed_world():
    T = sensor_pose_rh([0, 0, 0, 0, 30, 0])
    yaw_rh = np.degrees(np.arctan2(T[1, 0], T[0, 0]))
    assert yaw_rh == pytest.approx(-30.0)


def test_spec_docs_example_lidar_to_camera0():
    """The OPV2V docs' example: extrinsic translation ~(-3.0, 0, 0.9), rotation ~identity (to 1 cm)."""
    cords = [141.35, -388.64, 1.04, 0.0759, 174.18, 0.2069]
    lidar = [144.33, -388.94, 1.93, 0.078, 174.18, 0.21]
    E = lidar_to_camera_ue(cords, lidar)
    np.testing.assert_allclose(E[:3, 3], [-3.0, 0.0, 0.9], atol=0.01)
    np.testing.assert_allclose(E[:3, :3], np.eye(3), atol=1e-3)


def test_lidar_point_ahead_projects_in_front_of_camera0():
    cords = [141.35, -388.64, 1.04, 0.0759, 174.18, 0.2069]
    lidar = [144.33, -388.94, 1.93, 0.078, 174.18, 0.21]
    pts_cam = lidar_points_to_camera_cv(np.array([[20.0, 0.0, -0.9]]), cords, lidar)
    # camera0 sits 3.0 m ahead of and 0.9 m below the LiDAR: 20 m ahead of the LiDAR at camera height is
    # 17 m ahead of camera0, on its optical axis.
    np.testing.assert_allclose(pts_cam[0], [0.0, 0.0, 17.0], atol=0.01)


def test_box_corners_from_yaml_entry():
    corners = box_corners_world(
        location=[10.0, 5.0, 0.0], center=[0.0, 0.0, 0.7], extent=[2.0, 1.0, 0.7], angle=[0.0, 90.0, 0.0]
    )
    # yaw 90: the length axis points along world +y; bottom corners at z = 0, top at 1.4.
    np.testing.assert_allclose(corners[:, 2], [0, 0, 0, 0, 1.4, 1.4, 1.4, 1.4], atol=1e-12)
    np.testing.assert_allclose(corners[0], [10.0 + 1.0, 5.0 + 2.0, 0.0], atol=1e-12)  # (+ex, -ey, -ez)
    np.testing.assert_allclose(corners.mean(axis=0), [10.0, 5.0, 0.7], atol=1e-12)


def test_box_angle_order_is_roll_yaw_pitch():
    """angle = [roll, yaw, pitch]: a yaw-only angle [0, 30, 0] must rotate about z."""
    T = box_pose_rh([0, 0, 0], [0, 0, 0], [0.0, 30.0, 0.0])
    assert T[2, 2] == pytest.approx(1.0)
    corners = box_corners_world([0, 0, 0], [0, 0, 0], [1.0, 0.5, 0.5], [0.0, 30.0, 0.0])
    assert np.ptp(corners[:4, 2]) == pytest.approx(0.0, abs=1e-12)  # bottom stays flat
