"""Oriented boxes: every solid of a synthetic scene (buildings, vehicles, poles, trunks, canopies).

All quantities are in the CARLA (left-handed) world: x forward, y right, z up, metres. A box's rotation has the
box's forward, right and up axes as columns (``coopmap.geometry.carla_rotation`` of its angles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Materials of boxes (indices into the shading tables of :mod:`coopmap.synth.textures`).
BUILDING, VEHICLE, POLE, TRUNK, CANOPY = range(5)
#: Surface ids of the non-box surfaces in id maps.
GROUND_ID = -1
SKY_ID = -2


@dataclass(frozen=True)
class Boxes:
    """N oriented boxes.

    Attributes:
        center: (N, 3) box centres, metres, world.
        rot: (N, 3, 3) R_world_from_box (columns = box forward, right, up).
        half: (N, 3) half extents along the box axes, metres.
        material: (N,) int, one of BUILDING .. CANOPY.
        color: (N, 3) float base colour in [0, 1].
        actor_id: (N,) int64 CARLA actor id of vehicles, -1 for static objects.
    """

    center: np.ndarray
    rot: np.ndarray
    half: np.ndarray
    material: np.ndarray
    color: np.ndarray
    actor_id: np.ndarray

    def __len__(self) -> int:
        return int(self.center.shape[0])

    @staticmethod
    def empty() -> Boxes:
        return Boxes(
            np.zeros((0, 3)),
            np.zeros((0, 3, 3)),
            np.zeros((0, 3)),
            np.zeros(0, dtype=np.int64),
            np.zeros((0, 3)),
            np.zeros(0, dtype=np.int64),
        )

    @staticmethod
    def concat(*parts: Boxes) -> Boxes:
        """One Boxes holding all ``parts`` in order."""
        parts = tuple(p for p in parts if len(p)) or (Boxes.empty(),)
        return Boxes(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def select(self, index) -> Boxes:
        """The boxes at ``index`` (a boolean mask or integer indices)."""
        return Boxes(*(getattr(self, f)[index] for f in _FIELDS))

    def corners(self) -> np.ndarray:
        """(N, 8, 3) corners in the world."""
        signs = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=np.float64) * 2 - 1
        local = signs[None] * self.half[:, None, :]
        return local @ np.swapaxes(self.rot, -1, -2) + self.center[:, None, :]


_FIELDS = ("center", "rot", "half", "material", "color", "actor_id")


def make_boxes(center, rot, half, material, color, actor_id=None) -> Boxes:
    """Build :class:`Boxes` from array-likes, broadcasting a single ``material`` / ``actor_id``."""
    center = np.asarray(center, dtype=np.float64).reshape(-1, 3)
    n = center.shape[0]
    rot = np.broadcast_to(np.asarray(rot, dtype=np.float64), (n, 3, 3)).copy()
    half = np.broadcast_to(np.asarray(half, dtype=np.float64), (n, 3)).copy()
    material = np.broadcast_to(np.asarray(material, dtype=np.int64), (n,)).copy()
    color = np.broadcast_to(np.asarray(color, dtype=np.float64), (n, 3)).copy()
    ids = -1 if actor_id is None else actor_id
    actor_id = np.broadcast_to(np.asarray(ids, dtype=np.int64), (n,)).copy()
    return Boxes(center, rot, half, material, color, actor_id)
