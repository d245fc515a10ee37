"""CARLA 6-vector poses of the generator: composing a vehicle pose with a sensor mount.

The forward map (6-vector -> matrix) is :func:`coopmap.geometry.carla_to_matrix`; this module only adds its
inverse, so that a mounted sensor's pose can be written as the 6-vector OPV2V stores (``cords``, ``lidar_pose``).
"""

from __future__ import annotations

import numpy as np

from coopmap.geometry import carla_rotation, carla_to_matrix


def matrix_to_carla(T) -> np.ndarray:
    """Inverse of :func:`~coopmap.geometry.carla_to_matrix` (pitch in [-90, 90] degrees).

    Reads ``R[2,0] = sin(pitch)``, ``R[1,0] / R[0,0] = tan(yaw)``, ``R[2,1] / R[2,2] = -tan(roll)`` off the
    x_to_world rotation.

    Args:
        T: (*B, 4, 4) frame -> CARLA world transform.
    Returns:
        (*B, 6) ``[x, y, z, roll, yaw, pitch]``, metres and degrees, yaw and roll in (-180, 180].
    """
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    pitch = np.degrees(np.arcsin(np.clip(R[..., 2, 0], -1.0, 1.0)))
    yaw = np.degrees(np.arctan2(R[..., 1, 0], R[..., 0, 0]))
    roll = np.degrees(np.arctan2(-R[..., 2, 1], R[..., 2, 2]))
    return np.concatenate([T[..., :3, 3], np.stack([roll, yaw, pitch], axis=-1)], axis=-1)


def mount_pose(vehicle_pose, mount) -> np.ndarray:
    """World pose of a sensor rigidly mounted on a vehicle: ``T(vehicle) T(mount)`` as a 6-vector.

    Args:
        vehicle_pose: (*B, 6) CARLA pose of the vehicle origin.
        mount: (6,) CARLA pose of the sensor in the vehicle frame.
    Returns:
        (*B, 6) CARLA pose of the sensor in the world.
    """
    return matrix_to_carla(carla_to_matrix(vehicle_pose) @ carla_to_matrix(mount))


def yaw_matrix(yaw_deg) -> np.ndarray:
    """(*B,) yaw in degrees -> (*B, 3, 3) rotation of a level CARLA frame (roll = pitch = 0)."""
    yaw = np.asarray(yaw_deg, dtype=np.float64)
    return carla_rotation(np.zeros_like(yaw), yaw, np.zeros_like(yaw))
