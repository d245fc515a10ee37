"""Schema of the ``model`` config group: one flat schema shared by every model (unused keys are ignored).

See docs/models.md for what each model does with these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    #: tiny | oracle | mapanything
    name: str = "tiny"
    #: a training checkpoint (ours, ``{"model": state_dict, ...}``) or a MapAnything training checkpoint to load.
    checkpoint: str | None = None

    # --- tiny: architecture (sizes) ---
    #: pixels per patch side; the image H and W must be multiples of it.
    patch_size: int = 14
    #: token width.
    embed_dim: int = 96
    #: transformer blocks; they alternate per-view (even index) and across-all-views (odd index) attention.
    depth: int = 4
    #: attention heads (must divide embed_dim).
    num_heads: int = 4
    #: hidden width of the block MLPs, as a multiple of embed_dim.
    mlp_ratio: float = 4.0
    #: horizontal field of view (degrees) of the pinhole prior the ray head starts from (OPV2V: 100).
    ray_prior_fov_deg: float = 100.0
    #: metric scale (metres) the scale token starts at: initial depths are ~ this many metres.
    init_scale_m: float = 10.0

    # --- oracle: injected errors (exact, so metrics can be checked) ---
    #: global scale factor on every metric output (metric_scaling_factor = scale).
    scale: float = 1.0
    #: metres along each non-ego agent's forward axis, applied to its cameras and points.
    agent_offset_m: float = 0.0
    #: yaw (degrees, about the agent's up axis through its origin) of each non-ego agent's cameras and points.
    agent_rot_deg: float = 0.0
    #: standard deviation (metres) of Gaussian noise on the z-depth, seeded by ``seed`` and the sample index.
    depth_noise_m: float = 0.0
    seed: int = 0
    #: camera poses: gt | identity (every camera at the origin of the view-0 frame) | rig_at_ego (every agent at
    #: the ego's origin: camera pose = T_world_from_egoagent @ T_agent_from_cam) | shared (the shared poses, the
    #: models' pose inputs: docs/data.md "Shared poses").
    pose_reference: str = "gt"
    #: metres: if set, every pixel's z-depth is this value (all pixels known); None = the GT depth.
    constant_depth_m: float | None = None
    #: fraction of each view's sky pixels (dense GT 0) planted as floaters at ``float_height_m`` (seeded).
    sky_float_frac: float = 0.0
    #: fraction of each view's unlabelled non-sky pixels (dense GT > 0, or every unlabelled pixel of a view
    #: without dense GT) planted as floaters at ``float_height_m`` (seeded).
    unlabelled_float_frac: float = 0.0
    #: metres above the ego ground (ego-vehicle-frame z, GT) at which planted floaters sit, along their pixel's ray.
    float_height_m: float = 10.0

    # --- mapanything: loading and inputs ---
    #: hub id or local directory for ``MapAnything.from_pretrained`` (used unless ``hydra_config`` is set).
    pretrained: str = "facebook/map-anything-apache"
    #: MapAnything's Hydra config, builds the architecture without the hub: their repository's config folder
    #: (``<repo>/configs``, composed from its ``train.yaml`` with ``hydra_overrides``), a file of that tree
    #: (``<repo>/configs/model/mapanything.yaml``: composed as ``model=mapanything`` + ``hydra_overrides``), or a
    #: composed run config (``.hydra/config.yaml``, or any YAML with ``model_str`` and ``model_config``).
    hydra_config: str | None = None
    #: their Hydra overrides for composing ``hydra_config``, e.g. [model=mapanything, model/encoder=croco_512].
    hydra_overrides: list[str] = field(default_factory=list)
    #: optional geometric inputs passed to MapAnything from the batch views (spec section 1), e.g.
    #: [ray_directions_cam]; default none: images only.
    geometric_inputs: list[str] = field(default_factory=list)
