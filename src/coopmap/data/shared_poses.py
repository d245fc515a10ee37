"""Shared agent poses (V2X): every agent's pose as the other agents of a sample receive it.

In cooperative perception each connected vehicle broadcasts its own pose (its localisation, with GNSS-like error)
and the ego places the others with the relative pose of the two broadcasts. OpenCOOD (``wild_setting``:
``xyz_std`` metres on x, y, z, ``ryp_std`` degrees used on the yaw only, cooperators only) and HEAL
(``noise_setting``: ``pos_std`` metres on x and y, ``rot_std`` degrees on the yaw, every agent) simulate that error
as zero-mean Gaussian noise added to the 6-vector ``lidar_pose``. Here (docs/data.md, "Shared poses"):

- **Noise** (``source=noise``), in the agent's own frame (the views' ``agent_pose`` frame: right-handed, x forward,
  y left, z up): ``N = [Rz(yaw) Ry(pitch) Rx(roll), (dx, dy, dz)]`` with dx, dy ~ N(0, pos_std_m^2),
  dz ~ N(0, z_std_m^2), yaw / roll / pitch ~ N(0, std^2) in degrees. The agent's shared world pose is
  ``S_a = A_a N_a`` (``A_a`` = its true ``T_world_from_agent``). For a level vehicle this is HEAL's noise (x, y in
  the ground plane, yaw about the vertical) up to the sign conventions, which zero-mean noise does not see.
- **Dataset pose** (``source=predicted_ego_pos``): the body is misplaced rigidly by its GNSS error,
  ``S_a = P_a inv(V_a) A_a`` with ``V_a``/``P_a`` the right-handed world poses of the yaml's ``true_ego_pos`` /
  ``predicted_ego_pos`` (right for any body-fixed agent frame, vehicle or LiDAR).
- The ego keeps its own frame exactly (``S_ego = A_ego`` unless ``noise_ego``) and places agent a at
  ``T_ego_from_a = inv(S_ego) S_a``. In the sample's world (view 0 = the ego's camera0):
  ``shared_agent_pose_a = T_v0_from_world A_ego inv(S_ego) S_a``, i.e. ``M_a agent_pose_a`` with the world-frame
  correction ``M_a = T_v0_from_world A_ego inv(S_ego) S_a inv(A_a) T_world_from_v0``; every camera of agent a is
  ``shared_camera_pose = M_a camera_pose`` = shared agent pose x known rig (``T_agent_from_cam``). The ego's
  cameras keep their rig exactly (``M_ego = I``).

The noise of agent a depends only on (seed, scenario, timestamp, a): the same in every sample, split, mode and
run that contains that agent-frame, training and evaluation alike.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from coopmap.data.yaml_io import AgentYaml, load_yaml
from coopmap.errors import ConfigError, DataError
from coopmap.geometry import rotmat_to_quat_xyzw, sensor_pose_rh

__all__ = ["SharedPoseOptions", "SHARED_VIEW_KEYS", "noise_seed", "draw_pose_noise", "noise_transform",
           "shared_corrections", "add_shared_pose_keys"]

SOURCES = ("noise", "predicted_ego_pos")
#: view keys added by :func:`add_shared_pose_keys` (unbatched shapes).
SHARED_VIEW_KEYS = {
    "shared_agent_pose": (4, 4),
    "shared_camera_pose": (4, 4),
    "shared_camera_pose_quats": (4,),
    "shared_camera_pose_trans": (3,),
    "shared_pose_sigma": (2,),
}


@dataclass(frozen=True)
class SharedPoseOptions:
    """The settings of ``data.shared_pose`` (:class:`~coopmap.data.config.SharedPoseConfig`), validated."""

    source: str = "noise"
    pos_std_m: float = 0.0
    z_std_m: float = 0.0
    yaw_std_deg: float = 0.0
    roll_std_deg: float = 0.0
    pitch_std_deg: float = 0.0
    noise_ego: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"data.shared_pose.source must be one of {'|'.join(SOURCES)}, got {self.source!r}")
        for name in ("pos_std_m", "z_std_m", "yaw_std_deg", "roll_std_deg", "pitch_std_deg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"data.shared_pose.{name} must be a finite number >= 0, got {value}")

    @staticmethod
    def from_config(cfg) -> SharedPoseOptions:
        """From ``data.shared_pose`` (dataclass, DictConfig or None = perfect sharing)."""
        if cfg is None:
            return SharedPoseOptions()
        names = SharedPoseOptions.__dataclass_fields__
        return SharedPoseOptions(**{k: type(getattr(SharedPoseOptions, k))(getattr(cfg, k)) for k in names
                                    if hasattr(cfg, k)})

    @property
    def stds(self) -> np.ndarray:
        """(6,) stds of [dx, dy, dz] metres and [roll, yaw, pitch] degrees."""
        return np.array([self.pos_std_m, self.pos_std_m, self.z_std_m,
                         self.roll_std_deg, self.yaw_std_deg, self.pitch_std_deg], dtype=np.float64)

    def sigma(self) -> tuple[float, float]:
        """RMS position error (metres) and RMS rotation angle (radians, small-angle) of one noised agent."""
        t = math.sqrt(2 * self.pos_std_m ** 2 + self.z_std_m ** 2)
        r = math.radians(math.sqrt(self.yaw_std_deg ** 2 + self.roll_std_deg ** 2 + self.pitch_std_deg ** 2))
        return t, r


def noise_seed(seed: int, scenario: str, timestamp: str | int, agent_id: str | int) -> int:
    """A 64-bit seed from (seed, scenario, timestamp, agent id) (sha256; stable across processes and runs)."""
    text = f"{int(seed)}/{scenario}/{int(timestamp)}/{int(agent_id)}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


def draw_pose_noise(opts: SharedPoseOptions, scenario: str, timestamp: str | int, agent_id: str | int) -> np.ndarray:
    """(6,) float64 noise ``[dx, dy, dz]`` metres and ``[roll, yaw, pitch]`` degrees of one agent-frame.

    Six standard normals are always drawn (then scaled by :attr:`SharedPoseOptions.stds`), so a std of 0 changes
    no other component's draw.
    """
    rng = np.random.default_rng(noise_seed(opts.seed, scenario, timestamp, agent_id))
    return rng.standard_normal(6) * opts.stds


def noise_transform(noise: np.ndarray) -> np.ndarray:
    """(6,) ``[dx, dy, dz, roll, yaw, pitch]`` (metres, degrees) -> (4, 4) ``[Rz(yaw) Ry(pitch) Rx(roll), t]``,
    a transform in the agent's own right-handed frame (x forward, y left, z up)."""
    dx, dy, dz, roll, yaw, pitch = (float(v) for v in noise)
    cr, sr = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    cy, sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = Rz @ Ry @ Rx
    T[:3, 3] = (dx, dy, dz)
    return T


def _predicted_error(y: AgentYaml) -> np.ndarray:
    """(4, 4) world-frame rigid error ``P inv(V)`` of an agent's ``predicted_ego_pos`` against its ``true_ego_pos``."""
    doc = load_yaml(y.path, keys=("predicted_ego_pos",))
    raw = doc.get("predicted_ego_pos")
    try:
        pose = np.asarray([float(v) for v in raw], dtype=np.float64)
    except (TypeError, ValueError):
        pose = np.zeros(0)
    if pose.shape != (6,) or not np.isfinite(pose).all():
        raise DataError(y.path, f"data.shared_pose.source=predicted_ego_pos needs 'predicted_ego_pos' as 6 finite "
                                f"numbers, got {raw!r}")
    return sensor_pose_rh(pose) @ np.linalg.inv(sensor_pose_rh(np.asarray(y.true_ego_pos, dtype=np.float64)))


def shared_corrections(opts: SharedPoseOptions, scenario: str, timestamp: str, agent_ids: Sequence[str],
                       T_world_from_agent: Sequence[np.ndarray], yamls: Sequence[AgentYaml],
                       T_v0_from_world: np.ndarray) -> list[np.ndarray | None]:
    """Per agent of a sample (agent 0 = the ego), the view-0-frame correction ``M_a`` of the module docstring.

    Returns:
        A list of (4, 4) float64, or None where the correction is exactly the identity (perfect sharing, the ego):
        callers then copy the GT keys, so perfect sharing reproduces them bit for bit.
    """
    errors: list[np.ndarray | None] = []  # world-frame rigid errors E_a = S_a inv(A_a)
    for a, (agent_id, A, y) in enumerate(zip(agent_ids, T_world_from_agent, yamls)):
        if a == 0 and not opts.noise_ego:
            errors.append(None)
        elif opts.source == "predicted_ego_pos":
            errors.append(_predicted_error(y))
        else:
            noise = draw_pose_noise(opts, scenario, timestamp, agent_id)
            errors.append(None if not noise.any() else A @ noise_transform(noise) @ np.linalg.inv(A))
    out: list[np.ndarray | None] = [None]
    ego_inv = None if errors[0] is None else np.linalg.inv(errors[0])
    T_world_from_v0 = np.linalg.inv(T_v0_from_world)
    for E in errors[1:]:
        if E is None and ego_inv is None:
            out.append(None)
            continue
        W = (np.eye(4) if ego_inv is None else ego_inv) @ (np.eye(4) if E is None else E)
        out.append(T_v0_from_world @ W @ T_world_from_v0)
    return out


def add_shared_pose_keys(views: Sequence[dict], corrections: Sequence[np.ndarray | None],
                         opts: SharedPoseOptions) -> None:
    """Add the ``shared_*`` keys (:data:`SHARED_VIEW_KEYS`, docs/views.md) to a sample's unbatched views, in place.

    Args:
        views: the sample's view dicts with ``agent_index``, ``agent_pose``, ``camera_pose``,
            ``camera_pose_quats``, ``camera_pose_trans``; corrections: per agent, from :func:`shared_corrections`.
    """
    sigma_t, sigma_r = opts.sigma()
    for view in views:
        a = int(view["agent_index"])
        M = corrections[a]
        noised = a > 0 or opts.noise_ego
        view["shared_pose_sigma"] = torch.tensor([sigma_t, sigma_r] if noised else [0.0, 0.0], dtype=torch.float32)
        if M is None:
            view["shared_agent_pose"] = view["agent_pose"].clone()
            view["shared_camera_pose"] = view["camera_pose"].clone()
            view["shared_camera_pose_quats"] = view["camera_pose_quats"].clone()
            view["shared_camera_pose_trans"] = view["camera_pose_trans"].clone()
            continue
        Mt = torch.from_numpy(M)
        agent = Mt @ view["agent_pose"].double()
        cam = Mt @ view["camera_pose"].double()
        view["shared_agent_pose"] = agent.float()
        view["shared_camera_pose"] = cam.float()
        view["shared_camera_pose_quats"] = rotmat_to_quat_xyzw(cam[:3, :3]).float()
        view["shared_camera_pose_trans"] = cam[:3, 3].float()
