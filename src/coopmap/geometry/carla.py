"""CARLA / OPV2V frame conventions: the only place that knows them (see docs/conventions.md).

Raw OPV2V numbers live in CARLA's **left-handed** world (x forward, y right, z up; metres, degrees). Every
6-vector pose is ``[x, y, z, roll, yaw, pitch]``. Unreal (UE) sensor axes are also x forward, y right, z up.

Downstream, coopmap works in a **right-handed** world obtained with ``F = diag(1, -1, 1)`` (y flipped):
- points: ``p_rh = F p``; yaw_rh = -yaw;
- a rigid transform between two CARLA frames (vehicle, LiDAR): ``T_rh = F T F`` (both frames flipped), so the
  re-expressed vehicle / LiDAR frames are x forward, y left, z up;
- a camera: ``T_world_from_cam = F T(cords) P`` with OpenCV axes (x right, y down, z forward), det +1.

All functions here take and return numpy float64 arrays and accept any number of leading batch dimensions.
A pose or angle with NaN / inf raises :class:`~coopmap.errors.InvalidValueError` (a NaN pose would otherwise
silently poison every transform built from it); a wrong shape raises :class:`~coopmap.errors.ShapeError`.
"""

from __future__ import annotations

import numpy as np

from coopmap.errors import ShapeError, check_finite

#: The handedness flip between CARLA's left-handed world and our right-handed one (4x4 homogeneous).
F_FLIP = np.diag([1.0, -1.0, 1.0, 1.0])

#: OpenCV camera axes -> UE camera axes: p_ue = P_UE_FROM_CV @ p_cv (UE_x = cv_z, UE_y = cv_x, UE_z = -cv_y).
P_UE_FROM_CV = np.array(
    [[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)


def carla_rotation(roll_deg, yaw_deg, pitch_deg) -> np.ndarray:
    """Rotation of a CARLA transform, ``Rz(yaw) Ry(-pitch) Rx(-roll)`` on the raw degrees.

    Args:
        roll_deg, yaw_deg, pitch_deg: (*B,) degrees, CARLA conventions.
    Returns:
        (*B, 3, 3) rotation, columns = the frame's forward, right, up axes in the (left-handed) world; det +1.
    """
    r, y, p = (np.deg2rad(np.asarray(a, dtype=np.float64)) for a in (roll_deg, yaw_deg, pitch_deg))
    for name, a in (("roll", r), ("yaw", y), ("pitch", p)):
        check_finite(f"CARLA {name} (degrees)", a)
    cr, sr, cy, sy, cp, sp = np.cos(r), np.sin(r), np.cos(y), np.sin(y), np.cos(p), np.sin(p)
    rows = [
        [cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr],
        [sp, -cp * sr, cp * cr],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def carla_to_matrix(pose) -> np.ndarray:
    """OpenCOOD's ``x_to_world``: a CARLA 6-vector pose to the 4x4 transform frame -> CARLA world.

    Args:
        pose: (*B, 6) ``[x, y, z, roll, yaw, pitch]``, metres and degrees.
    Returns:
        T_world_from_x: (*B, 4, 4), left-handed world.
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.ndim == 0 or pose.shape[-1] != 6:
        raise ShapeError(f"CARLA pose must have 6 values [x,y,z,roll,yaw,pitch], got shape {pose.shape}")
    check_finite("CARLA pose [x,y,z,roll,yaw,pitch]", pose)
    T = np.zeros(pose.shape[:-1] + (4, 4))
    T[..., :3, :3] = carla_rotation(pose[..., 3], pose[..., 4], pose[..., 5])
    T[..., :3, 3] = pose[..., :3]
    T[..., 3, 3] = 1.0
    return T


def x1_to_x2(pose1, pose2) -> np.ndarray:
    """OpenCOOD's ``x1_to_x2``: maps points from frame 1 into frame 2, ``inv(T(pose2)) T(pose1)``.

    Args:
        pose1, pose2: (*B, 6) CARLA poses.
    Returns:
        T_x2_from_x1: (*B, 4, 4) between the two (left-handed, UE-axis) frames.
    """
    return np.linalg.inv(carla_to_matrix(pose2)) @ carla_to_matrix(pose1)


def flip_transform(T_lh) -> np.ndarray:
    """Re-express a transform between two left-handed CARLA frames as one between right-handed frames.

    ``F T F``: both the target and the source frame get their y axis flipped (x forward, y left, z up).
    Use it for world-from-vehicle, world-from-LiDAR and vehicle-from-vehicle transforms.
    """
    return F_FLIP @ np.asarray(T_lh, dtype=np.float64) @ F_FLIP


def sensor_pose_rh(pose) -> np.ndarray:
    """A CARLA 6-vector pose of a vehicle or LiDAR -> T_world_from_x in the right-handed world (det +1).

    Args:
        pose: (*B, 6) CARLA pose.
    Returns:
        (*B, 4, 4); the frame x is x forward, y left, z up.
    """
    return flip_transform(carla_to_matrix(pose))


def agent_frame_rh(lidar_pose, height) -> np.ndarray:
    """An agent's frame: its LiDAR frame lowered by ``height`` along the LiDAR's own z axis (to the ground).

    x forward, y left, z up (right-handed world), origin on the ground below the LiDAR, so the z of a point in it
    is its height above the agent's ground plane; camera lever arms are the rig's size (docs/conventions.md,
    "Agent frames"). OpenCOOD / HEAL use the LiDAR frame itself (``height = 0``).

    Args:
        lidar_pose: (*B, 6) CARLA pose of the LiDAR; height: (*B,) metres above the ground.
    Returns:
        T_world_from_agent: (*B, 4, 4) = ``sensor_pose_rh(lidar_pose) @ Tz(-height)``.
    """
    T = sensor_pose_rh(lidar_pose)
    h = np.asarray(height, dtype=np.float64)
    check_finite("LiDAR height above the ground", h)
    T[..., :3, 3] = T[..., :3, 3] - h[..., None] * T[..., :3, 2]
    return T


def camera_pose_rh(cords) -> np.ndarray:
    """A camera's ``cords`` -> ``T_world_from_cam``: OpenCV camera axes into the right-handed world (det +1).

    Args:
        cords: (*B, 6) the camera's CARLA pose (the yaml key ``cameraK.cords``).
    Returns:
        T_world_from_cam: (*B, 4, 4) = F T(cords) P.
    """
    return F_FLIP @ carla_to_matrix(cords) @ P_UE_FROM_CV


def points_lh_to_rh(pts) -> np.ndarray:
    """Points in any left-handed CARLA/UE frame -> the same frame with y flipped. (*B, 3) -> (*B, 3)."""
    pts = np.asarray(pts)
    return pts * np.array([1.0, -1.0, 1.0], dtype=pts.dtype if pts.dtype.kind == "f" else np.float64)


def lidar_to_camera_ue(cords, lidar_pose) -> np.ndarray:
    """The yaml ``extrinsic``: LiDAR -> camera in UE axes, ``inv(T(cords)) T(lidar_pose)``. (*B, 4, 4)."""
    return x1_to_x2(lidar_pose, cords)


def lidar_points_to_camera_cv(pts_lidar, cords, lidar_pose) -> np.ndarray:
    """Raw LiDAR points (as in the ``.pcd``) -> the camera's OpenCV frame: ``P^T inv(T(cords)) T(lidar) p``.

    Args:
        pts_lidar: (N, 3) metres, LiDAR frame (x forward, y right, z up).
        cords, lidar_pose: (6,) CARLA poses of the camera and of the LiDAR.
    Returns:
        pts_cam: (N, 3) metres, OpenCV camera frame; z is the depth along the optical axis.
    """
    T = P_UE_FROM_CV.T @ lidar_to_camera_ue(cords, lidar_pose)
    pts = np.asarray(pts_lidar, dtype=np.float64)
    return pts @ T[:3, :3].T + T[:3, 3]
