"""Vehicle bounding boxes from OPV2V's yaml ``vehicles`` entries (OpenCOOD conventions), and point membership.

A yaml entry has ``location`` (vehicle origin, CARLA world), ``center`` (box-centre offset), ``extent`` (**half**
length, width, height) and ``angle`` = **[roll, yaw, pitch]** (not the 6-vector order). Like OpenCOOD, the box pose
is ``[location + center, roll, yaw, pitch]`` with ``center`` added in world axes, unrotated (a small OpenCOOD quirk,
exact for the usual centre offset (0, 0, h) and flat roads); ``rotate_center=True`` rotates it by the vehicle
orientation instead.
"""

from __future__ import annotations

import numpy as np
import torch

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


#: points tested against the boxes at once (bounds the (chunk, N, 3) membership tensor).
_CHUNK = 65536


def first_box_containing(pts_world: torch.Tensor, T_box_from_world: torch.Tensor, half_extent: torch.Tensor):
    """Index of the first box containing each point, or -1.

    Args:
        pts_world: (M, 3) metres; T_box_from_world: (N, 4, 4); half_extent: (N, 3) metres.
    Returns:
        (M,) int64 box index in 0..N-1, -1 outside every box.
    """
    out = torch.full((pts_world.shape[0],), -1, dtype=torch.long, device=pts_world.device)
    N = T_box_from_world.shape[0]
    if N == 0:
        return out
    # one GEMM for every (point, box) pair: p_box[m, n] = R_n p_m + t_n
    R_flat = T_box_from_world[:, :3, :3].permute(2, 0, 1).reshape(3, 3 * N)
    t_flat = T_box_from_world[:, :3, 3].reshape(1, 3 * N)
    for start in range(0, pts_world.shape[0], _CHUNK):
        p_box = torch.addmm(t_flat, pts_world[start:start + _CHUNK], R_flat).view(-1, N, 3).abs_()
        inside = ((p_box[..., 0] <= half_extent[:, 0]) & (p_box[..., 1] <= half_extent[:, 1])
                  & (p_box[..., 2] <= half_extent[:, 2]))  # (m, N)
        first = inside.to(torch.uint8).argmax(-1)
        out[start:start + _CHUNK] = torch.where(inside.any(-1), first, -1)
    return out


def first_box_map(pts: torch.Tensor, mask: torch.Tensor, T_box_from_world: torch.Tensor,
                  half_extent: torch.Tensor) -> torch.Tensor:
    """:func:`first_box_containing` of the points ``pts[mask]`` as an int32 map of ``mask``'s shape, -1 elsewhere.

    Args:
        pts: (*S, 3) metres; mask: (*S) bool; T_box_from_world: (N, 4, 4); half_extent: (N, 3) metres.
    """
    out = torch.full(mask.shape, -1, dtype=torch.int32, device=mask.device)  # int32: MapAnything's type check
    if T_box_from_world.shape[0] and bool(mask.any()):
        out[mask] = first_box_containing(pts[mask], T_box_from_world, half_extent).to(torch.int32)
    return out
