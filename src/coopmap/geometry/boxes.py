"""Vehicle bounding boxes from OPV2V's yaml ``vehicles`` entries (OpenCOOD conventions).

A yaml entry has ``location`` (vehicle origin, CARLA world), ``center`` (box-centre offset), ``extent`` (**half**
length, width, height) and ``angle`` = **[roll, yaw, pitch]** (not the 6-vector order). Like OpenCOOD, the box pose
is ``[location + center, roll, yaw, pitch]`` with ``center`` added in world axes, unrotated (a small OpenCOOD quirk,
exact for the usual centre offset (0, 0, h) and flat roads); ``rotate_center=True`` rotates it by the vehicle
orientation instead.
"""

from __future__ import annotations

import numpy as np

from coopmap.geometry.carla import carla_to_matrix, flip_transform

#: Corner signs in the box frame: bottom four then top four (OpenCOOD's order).
_CORNER_SIGNS = np.array(
    [[1, -1, -1], [1, 1, -1], [-1, 1, -1], [-1, -1, -1], [1, -1, 1], [1, 1, 1], [-1, 1, 1], [-1, -1, 1]],
    dtype=np.float64,
)


def box_pose_carla(location, center, angle, rotate_center: bool = False) -> np.ndarray:
    """The box's CARLA 6-vector pose ``[x, y, z, roll, yaw, pitch]`` from a yaml vehicle entry.

    Args:
        location, center: (*B, 3) metres; angle: (*B, 3) degrees [roll, yaw, pitch].
    Returns:
        (*B, 6) CARLA pose of the box centre.
    """
    location = np.asarray(location, dtype=np.float64)
    center = np.asarray(center, dtype=np.float64)
    angle = np.asarray(angle, dtype=np.float64)
    if rotate_center:
        R = carla_to_matrix(np.concatenate([np.zeros_like(location), angle], axis=-1))[..., :3, :3]
        center = (R @ center[..., None])[..., 0]
    return np.concatenate([location + center, angle], axis=-1)  # angle is already [roll, yaw, pitch]


def box_corners_local(extent) -> np.ndarray:
    """(*B, 3) half extents -> (*B, 8, 3) corners in the box frame (UE axes; bottom four, then top four)."""
    extent = np.asarray(extent, dtype=np.float64)
    return _CORNER_SIGNS * extent[..., None, :]


def box_corners_world(location, center, extent, angle, rotate_center: bool = False) -> np.ndarray:
    """Corners of a yaml vehicle box in the CARLA (left-handed) world.

    Returns:
        (*B, 8, 3) metres, CARLA world.
    """
    T = carla_to_matrix(box_pose_carla(location, center, angle, rotate_center))
    local = box_corners_local(extent)
    return local @ np.swapaxes(T[..., :3, :3], -1, -2) + T[..., None, :3, 3]


def box_pose_rh(location, center, angle, rotate_center: bool = False) -> np.ndarray:
    """T_world_from_box in the right-handed world; the box frame is x along the length, y left, z up.

    With half extents ``e``, a point ``p_box`` is inside the box iff ``|p_box| <= e`` component-wise.
    """
    return flip_transform(carla_to_matrix(box_pose_carla(location, center, angle, rotate_center)))
