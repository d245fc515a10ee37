"""Frames shared by the hand-made test scenes (metrics and filtering tests).

Right-handed, z up, ground at z = 0; the ego LiDAR sits at (-0.5, 0, 1.9) in the ego vehicle frame, as OPV2V mounts it.
"""

from __future__ import annotations

import math

import numpy as np

#: ego LiDAR -> ego vehicle frame (origin on the ground): translation (-0.5, 0, 1.9).
T_EGO_FROM_LIDAR = np.array([[1, 0, 0, -0.5], [0, 1, 0, 0], [0, 0, 1, 1.9], [0, 0, 0, 1.0]])


def rigid(yaw_deg: float = 0.0, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4: rotation about z by ``yaw_deg``, then translation ``t``."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = t
    return T
