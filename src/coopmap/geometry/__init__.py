"""Every frame convention of coopmap lives here (see docs/conventions.md).

- :mod:`coopmap.geometry.carla`: CARLA 6-vector poses, the left-handed -> right-handed flip, UE -> OpenCV axes.
- :mod:`coopmap.geometry.boxes`: vehicle box poses and corners from yaml entries.
- :mod:`coopmap.geometry.rotations`: XYZW quaternions, pose algebra, geodesic angles, Umeyama (via roma).
- :mod:`coopmap.geometry.camera`: pinhole projection, unprojection, rays, intrinsics under resizing.
"""

from coopmap.geometry.boxes import (
    box_corners_local,
    box_corners_world,
    box_pose_carla,
    box_pose_rh,
    first_box_containing,
    first_box_map,
)
from coopmap.geometry.camera import (
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
from coopmap.geometry.carla import (
    F_FLIP,
    P_UE_FROM_CV,
    agent_frame_rh,
    camera_pose_rh,
    carla_rotation,
    carla_to_matrix,
    flip_transform,
    lidar_points_to_camera_cv,
    lidar_to_camera_ue,
    points_lh_to_rh,
    sensor_pose_rh,
    x1_to_x2,
)
from coopmap.geometry.rotations import (
    compose_poses,
    geodesic_angle,
    invert_pose,
    pose_from_quat_trans,
    pose_to_quat_trans,
    quat_xyzw_to_rotmat,
    relative_pose,
    rotmat_to_quat_xyzw,
    transform_points,
    umeyama_alignment,
)

__all__ = [
    "F_FLIP",
    "P_UE_FROM_CV",
    "agent_frame_rh",
    "box_corners_local",
    "box_corners_world",
    "box_pose_carla",
    "box_pose_rh",
    "first_box_containing",
    "first_box_map",
    "camera_pose_rh",
    "carla_intrinsics",
    "carla_rotation",
    "carla_to_matrix",
    "compose_poses",
    "crop_intrinsics",
    "depth_z_to_along_ray",
    "depthmap_to_pts_cam",
    "flip_transform",
    "geodesic_angle",
    "intrinsics_from_carla",
    "intrinsics_to_carla",
    "invert_pose",
    "lidar_points_to_camera_cv",
    "lidar_to_camera_ue",
    "opv2v_intrinsics",
    "pixel_grid",
    "points_lh_to_rh",
    "pose_from_quat_trans",
    "pose_to_quat_trans",
    "project",
    "quat_xyzw_to_rotmat",
    "ray_directions",
    "relative_pose",
    "rotmat_to_quat_xyzw",
    "scale_intrinsics",
    "sensor_pose_rh",
    "transform_points",
    "umeyama_alignment",
    "unproject",
    "x1_to_x2",
]
