"""Sensor poses of the generator: the 6-vector inverse and the OPV2V mounts (spec section 2)."""

import numpy as np
import pytest

from coopmap.geometry import carla_to_matrix, x1_to_x2
from coopmap.synth.config import CAMERA_MOUNTS, LIDAR_MOUNT
from coopmap.synth.poses import matrix_to_carla, mount_pose, yaw_matrix


def test_matrix_to_carla_inverts_carla_to_matrix():
    rng = np.random.default_rng(0)
    poses = np.concatenate(
        [rng.uniform(-500, 500, (300, 3)), rng.uniform(-179, 179, (300, 1)), rng.uniform(-179, 179, (300, 1)),
         rng.uniform(-89, 89, (300, 1))], axis=1)
    back = matrix_to_carla(carla_to_matrix(poses))
    np.testing.assert_allclose(back, poses, atol=1e-9)


def test_matrix_to_carla_wraps_yaw_into_half_open_circle():
    pose = matrix_to_carla(carla_to_matrix([1.0, 2.0, 3.0, 0.0, 190.0, 0.0]))
    np.testing.assert_allclose(pose, [1.0, 2.0, 3.0, 0.0, -170.0, 0.0], atol=1e-9)


# relative to the LiDAR, from the spec's mount table (x, y, z, yaw)
SPEC_RELATIVE_TO_LIDAR = [(3.0, 0.0, -0.9, 0.0), (0.5, 0.3, -0.1, 100.0), (0.5, -0.3, -0.1, -100.0),
                          (-1.5, 0.0, -0.4, 180.0)]


@pytest.mark.parametrize("k", range(4))
def test_camera_mounts_relative_to_lidar_match_spec_table(k):
    vehicle = [141.35, -388.64, 0.03, 0.0759, 174.18, 0.2069]  # the docs example's orientation
    cam = mount_pose(vehicle, CAMERA_MOUNTS[k])
    lidar = mount_pose(vehicle, LIDAR_MOUNT)
    T = x1_to_x2(cam, lidar)  # camera frame -> LiDAR frame
    x, y, z, yaw = SPEC_RELATIVE_TO_LIDAR[k]
    np.testing.assert_allclose(T[:3, 3], [x, y, z], atol=1e-9)
    np.testing.assert_allclose(T[:3, :3], yaw_matrix(yaw), atol=1e-9)


def test_mount_pose_composes_translation_in_vehicle_axes():
    # a vehicle facing +y (yaw 90): its forward axis is world +y, its right axis world -x (CARLA, left-handed)
    lidar = mount_pose([10.0, 20.0, 0.0, 0.0, 90.0, 0.0], LIDAR_MOUNT)
    np.testing.assert_allclose(lidar, [10.0, 19.5, 1.9, 0.0, 90.0, 0.0], atol=1e-9)
    cam1 = mount_pose([10.0, 20.0, 0.0, 0.0, 90.0, 0.0], CAMERA_MOUNTS[1])
    np.testing.assert_allclose(cam1, [9.7, 20.0, 1.8, 0.0, -170.0, 0.0], atol=1e-9)
