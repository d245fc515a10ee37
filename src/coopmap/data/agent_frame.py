"""Each agent's frame: its LiDAR frame lowered to the ground (docs/conventions.md, "Agent frames").

OpenCOOD and HEAL work in each agent's ``lidar_pose`` frame. Ours is that frame moved down the LiDAR's z axis by
the LiDAR's height above the ground, so heights above the ground stay what the height prior and the BEV metrics
need while every camera's lever arm stays the rig's size (a few metres). The height comes from:

- ``true_ego_pos`` (a vehicle's origin, on the ground) when it is within ``RIG_MAX`` metres of the LiDAR: the
  LiDAR's z in that vehicle frame (OPV2V's CAVs: 1.9 m);
- otherwise (roadside units, whose ``true_ego_pos`` was found 73 m from the LiDAR in a real dump) the agent's own
  LiDAR returns: minus the ``GROUND_PERCENTILE``-th percentile of the returns' height relative to the LiDAR,
  levelled by the LiDAR's roll and pitch (world vertical), within ``GROUND_RADIUS`` metres horizontally. Most
  such returns are road (locally level in the world); the frame is then lowered along the LiDAR's own z axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coopmap.data.yaml_io import AgentYaml
from coopmap.errors import DataError
from coopmap.geometry import carla_rotation, carla_to_matrix

__all__ = ["RIG_MAX", "GROUND_RADIUS", "GROUND_PERCENTILE", "MIN_GROUND_RETURNS", "lidar_height_above_ground"]

#: farthest a vehicle origin (``true_ego_pos``) may be from its own LiDAR and still be the rig's ground point.
RIG_MAX = 10.0
#: horizontal radius (metres) and percentile of the returns that find the ground under a roadside unit.
GROUND_RADIUS = 40.0
GROUND_PERCENTILE = 5.0
MIN_GROUND_RETURNS = 100


def lidar_height_above_ground(y: AgentYaml, pts_lidar: np.ndarray, pcd_path: str | Path) -> tuple[float, str]:
    """The LiDAR's height above the ground (metres) and where it came from (``"true_ego_pos"`` / ``"lidar"``).

    Args:
        y: the agent's yaml; pts_lidar: (N, 3) raw ``.pcd`` points (LiDAR frame, CARLA axes).
    Raises:
        DataError: the vehicle pose is not the rig's and fewer than ``MIN_GROUND_RETURNS`` returns lie within
            ``GROUND_RADIUS`` of the LiDAR (naming the pcd).
    """
    T_vehicle = carla_to_matrix(y.true_ego_pos)
    lidar_in_vehicle = np.linalg.solve(T_vehicle, np.append(y.lidar_pose[:3], 1.0))[:3]
    if float(np.linalg.norm(lidar_in_vehicle)) <= RIG_MAX:
        return float(lidar_in_vehicle[2]), "true_ego_pos"
    # level the returns (the LiDAR's roll and pitch only): z becomes world-vertical under the LiDAR
    R_tilt = carla_rotation(y.lidar_pose[3], 0.0, y.lidar_pose[5])
    pts = np.asarray(pts_lidar, dtype=np.float64) @ R_tilt.T
    near = np.hypot(pts[:, 0], pts[:, 1]) <= GROUND_RADIUS
    if int(near.sum()) < MIN_GROUND_RETURNS:
        raise DataError(pcd_path, f"cannot place the agent on the ground: true_ego_pos is "
                                  f"{np.linalg.norm(lidar_in_vehicle):.1f} m from the LiDAR (> {RIG_MAX:g} m, a "
                                  f"roadside unit?) and only {int(near.sum())} returns lie within {GROUND_RADIUS:g} m")
    return float(-np.percentile(pts[near, 2], GROUND_PERCENTILE)), "lidar"
