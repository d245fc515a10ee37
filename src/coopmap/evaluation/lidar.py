"""The GT point cloud of a sample: its agents' LiDAR sweeps fused in the ego LiDAR frame (right-handed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coopmap.data.pcd_io import read_pcd
from coopmap.data.yaml_io import read_lidar_pose
from coopmap.geometry import points_lh_to_rh, sensor_pose_rh, transform_points


def fused_lidar_ego(scenario_dir: str | Path, timestamp: str, agent_ids: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The sweeps of ``agent_ids`` (first = ego) fused in the ego LiDAR frame (x fwd, y left, z up).

    Returns:
        pts (M, 3) float64 metres, ego LiDAR frame; T_world_from_egolidar (4, 4), right-handed world.
    Raises DataError (naming the file) when a sweep or a yaml is missing or malformed.
    """
    scenario_dir = Path(scenario_dir)
    poses = {a: sensor_pose_rh(read_lidar_pose(scenario_dir / a / f"{timestamp}.yaml")) for a in agent_ids}
    T_ego_from_world = np.linalg.inv(poses[agent_ids[0]])
    clouds = []
    for agent in agent_ids:
        pts = points_lh_to_rh(read_pcd(scenario_dir / agent / f"{timestamp}.pcd", with_intensity=False).points)
        clouds.append(transform_points(T_ego_from_world @ poses[agent], pts.astype(np.float64)))
    return np.concatenate(clouds, axis=0), poses[agent_ids[0]]
