"""Schema of the ``data`` config group (validated by Hydra: a misspelt key fails)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class SharedPoseConfig:
    """The agent poses the vehicles share with each other (V2X), as data and optional model inputs.

    Each agent's shared pose is its true pose with seeded noise (``source=noise``) or its yaml's
    ``predicted_ego_pos`` (``source=predicted_ego_pos``); see docs/data.md for the exact frames. The std fields are
    the noise model (OpenCOOD ``wild_setting`` / HEAL ``noise_setting``: position std in metres on x and y, yaw std
    in degrees); with ``source=predicted_ego_pos`` nothing is drawn and they declare the error the consistency
    prior assumes.
    """

    #: noise (true pose + drawn noise) | predicted_ego_pos (the yaml's GNSS-filtered pose).
    source: str = "noise"
    #: metres: std of the Gaussian position noise on the agent's x and y axes (HEAL pos_std); 0 = perfect.
    pos_std_m: float = 0.0
    #: metres: std of the noise on the agent's z axis (OpenCOOD's xyz_std also noises z; HEAL does not).
    z_std_m: float = 0.0
    #: degrees: std of the yaw noise about the agent's up axis (HEAL rot_std, OpenCOOD ryp_std).
    yaw_std_deg: float = 0.0
    #: degrees: std of the roll / pitch noise (neither OpenCOOD nor HEAL draws them; 0 by default).
    roll_std_deg: float = 0.0
    pitch_std_deg: float = 0.0
    #: also noise the ego's own shared pose (HEAL; OpenCOOD and CoAlign noise only the cooperators). The ego's
    #: cameras keep their known rig either way; its noise reaches the others through the relative poses.
    noise_ego: bool = False
    #: the noise of agent a at a frame depends only on (seed, scenario, timestamp, a): the same in training and
    #: evaluation, whatever the split, mode or ego of the sample.
    seed: int = 0


@dataclass
class DataConfig:
    #: root of an OPV2V tree (real or made by ``coopmap synth``); required.
    root: str = MISSING
    #: split folder to train / evaluate on.
    split: str = "train"
    #: held-out split for periodic validation (None = no validation).
    val_split: str | None = None
    #: single (the ego's 4 cameras) | coop (ego + cooperating CAVs) | mixed (both, alternating).
    mode: str = "coop"
    #: output image size [W, H]; both multiples of ``patch_size``.
    resolution: list[int] = field(default_factory=lambda: [518, 392])
    patch_size: int = 14
    #: most agents in a coop sample (ego included), OpenCOOD uses 7, HEAL 5.
    max_cav: int = 5
    #: metres; CAVs farther from the ego do not cooperate (OpenCOOD's COM_RANGE).
    com_range: float = 70.0
    #: first = the first CAV in string order (never an RSU); all = every CAV is ego in turn; opencood = OpenCOOD's /
    #: HEAL's evaluation order (an RSU can be ego, max_cav by list order). docs/data.md "Ego and cooperators".
    ego_policy: str = "first"
    #: sparse depth GT from the camera's own agent's LiDAR (own) or all agents' LiDAR fused (fused).
    depth_source: str = "own"
    #: fused depth only: visibility test; every return is splatted as a disc of this radius (metres) and a return
    #: more than ``occlusion_rel_tol`` (relative) behind a splat covering its pixel is dropped; 0 disables it.
    occlusion_radius: float = 0.1
    occlusion_rel_tol: float = 0.12
    #: cache the scanned index as JSON next to the data (or under ~/.cache/coopmap); see docs/data.md.
    cache_index: bool = True
    #: image normalisation (dinov2 | croco | dust3r | identity); MapAnything models set their own.
    norm_type: str = "dinov2"
    #: the views' ``is_synthetic`` flag, read by MapAnything's criteria as "dense depth GT": True switches on their
    #: dense-only terms (normals, gradients) and off their real-data outlier rule. Our ``depthmap`` is sparse LiDAR
    #: even in synthetic scenes, so False unless you know better.
    is_synthetic: bool = False
    #: shared agent poses (V2X): view keys ``shared_*`` (docs/views.md), the pose inputs of the models.
    shared_pose: SharedPoseConfig = field(default_factory=SharedPoseConfig)
    batch_size: int = 1
    num_workers: int = 0
