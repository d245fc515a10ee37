"""Each agent's frame: its LiDAR frame lowered to the ground (docs/conventions.md, "Agent frames").

OpenCOOD and HEAL work in each agent's ``lidar_pose`` frame. Ours is that frame moved down the LiDAR's z axis by
the LiDAR's height above the ground, so heights above the ground stay what the height prior and the BEV metrics
need while every camera's lever arm stays the rig's size (a few metres). The height comes from:

- for a vehicle (non-negative id), ``true_ego_pos`` (its origin, on the ground) when the LiDAR is within
  ``RIG_MAX`` metres of it and ``VEHICLE_HEIGHTS`` above it: the LiDAR's z in that vehicle frame (OPV2V: 1.9 m);
- otherwise, and always for roadside units (whose ``true_ego_pos`` was found 73 m from the LiDAR in a real dump),
  the agent's own LiDAR returns: minus the ``GROUND_PERCENTILE``-th percentile of the returns' height relative to the LiDAR,
  levelled by the LiDAR's roll and pitch (world vertical), within ``GROUND_RADIUS`` metres horizontally. Most
  such returns are road (locally level in the world); the frame is then lowered along the LiDAR's own z axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coopmap.data.yaml_io import AgentYaml
from coopmap.errors import DataError
from coopmap.geometry import carla_rotation, carla_to_matrix

__all__ = ["RIG_MAX", "VEHICLE_HEIGHTS", "GROUND_RADIUS", "GROUND_PERCENTILE", "MIN_GROUND_RETURNS",
           "lidar_height_above_ground"]

#: farthest a vehicle origin (``true_ego_pos``) may be from its own LiDAR and still be the rig's ground point.
RIG_MAX = 10.0
#: the LiDAR heights above a vehicle origin accepted as a rig (metres).
VEHICLE_HEIGHTS = (0.3, 5.0)
#: horizontal radius (metres) and percentile of the returns that find the ground under a roadside unit.
GROUND_RADIUS = 40.0
GROUND_PERCENTILE = 5.0
MIN_GROUND_RETURNS = 100


def lidar_height_above_ground(y: AgentYaml, pts_lidar: np.ndarray, pcd_path: str | Path,
                              roadside: bool = False) -> tuple[float, str]:
    """The LiDAR's height above the ground (metres) and where it came from (``"true_ego_pos"`` / ``"lidar"``).

    Args:
        y: the agent's yaml; pts_lidar: (N, 3) raw ``.pcd`` points (LiDAR frame, CARLA axes);
        roadside: a roadside unit (negative id): never trust ``true_ego_pos``.
    Raises:
        DataError: the vehicle pose is not the rig's and fewer than ``MIN_GROUND_RETURNS`` returns lie within
            ``GROUND_RADIUS`` of the LiDAR (naming the pcd).
    """
    T_vehicle = carla_to_matrix(y.true_ego_pos)
    lidar_in_vehicle = np.linalg.solve(T_vehicle, np.append(y.lidar_pose[:3], 1.0))[:3]
    rig = float(np.linalg.norm(lidar_in_vehicle)) <= RIG_MAX
    if not roadside and rig and VEHICLE_HEIGHTS[0] <= lidar_in_vehicle[2] <= VEHICLE_HEIGHTS[1]:
        return float(lidar_in_vehicle[2]), "true_ego_pos"
    # level the returns (the LiDAR's roll and pitch only): z becomes world-vertical under the LiDAR
    R_tilt = carla_rotation(y.lidar_pose[3], 0.0, y.lidar_pose[5])
    pts = np.asarray(pts_lidar, dtype=np.float64) @ R_tilt.T
    near = np.hypot(pts[:, 0], pts[:, 1]) <= GROUND_RADIUS
    if int(near.sum()) < MIN_GROUND_RETURNS:
        why = "a roadside unit" if roadside else (f"true_ego_pos is {np.linalg.norm(lidar_in_vehicle):.1f} m from "
                                                  f"the LiDAR, {lidar_in_vehicle[2]:.2f} m below it: not its rig")
        raise DataError(pcd_path, f"cannot place the agent on the ground: {why}, and only {int(near.sum())} "
                                  f"returns lie within {GROUND_RADIUS:g} m")
    return float(-np.percentile(pts[near, 2], GROUND_PERCENTILE)), "lidar"
