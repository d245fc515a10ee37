"""The teacher cache: the frozen teacher's distillation targets computed once per split, looked up in training.

Layout of a cache directory::

    manifest.json                                   format, version, teacher and data fingerprints, status
    samples/<mode>/<scenario>/<timestamp>/<ego_agent_id>.npz   one file per sample (numpy, no pickle)

Each ``.npz`` holds, for the sample's V views in order: ``instances`` (V,) str (the views' ``instance`` keys
``<scenario>/<timestamp>/<agent_id>/camera<k>``), ``cam_quats`` (V,4), ``cam_trans`` (V,3), ``metric_scale``
(V,1), ``scene_scale`` (V,1) (version 2: the metric scene scale the scale distillation compares) and, with a depth stride, ``depth`` (V,h,w,1), all float32 copies of the teacher's outputs (so a lookup
returns exactly the online teacher's targets). The key includes the sample's ego (view 0's agent) because the
targets live in the sample's view-0 frame, and the sample's **effective mode**: ``coop`` when any view belongs to a
cooperating CAV (``agent_index > 0``), else ``single``.

The manifest records the teacher fingerprint (model name, sha256 of ``model.checkpoint``, the ``model`` fields that
change its outputs) and the
data fingerprint (``root``, ``split``, ``mode``, ``resolution``, ``patch_size``, ``max_cav``, ``com_range``,
``ego_policy``, ``norm_type``). Opening a cache with another teacher or data config raises
:class:`~coopmap.errors.CheckpointError` saying what differs; so does an unfinished cache. The cache assumes
deterministic views (no random augmentation): the same sample must give the same images.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from coopmap.errors import CheckpointError, DataError
from coopmap.models.checkpoint import file_sha256
from coopmap.models.teacher import TEACHER_DEPTH_KEY

FORMAT = "coopmap-teacher-cache"
VERSION = 2  # 2: scene_scale (the metric scene scale) added; version-1 caches must be rebuilt
MANIFEST = "manifest.json"
DATA_FINGERPRINT_KEYS = (
    "root", "split", "mode", "resolution", "patch_size", "max_cav", "com_range", "ego_policy", "norm_type",
)
#: npz array name -> target key.
_ARRAYS = {
    "cam_quats": "teacher_cam_quats",
    "cam_trans": "teacher_cam_trans",
    "metric_scale": "teacher_metric_scale",
    "scene_scale": "teacher_scene_scale",
    "depth": TEACHER_DEPTH_KEY,
}


#: the ``model`` fields that change a teacher's outputs, per model (besides the checkpoint's bytes).
TEACHER_FIELDS = {
    "tiny": ("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "ray_prior_fov_deg"),
    "oracle": ("scale", "agent_offset_m", "agent_rot_deg", "depth_noise_m", "seed", "pose_reference",
               "constant_depth_m", "sky_float_frac", "unlabelled_float_frac", "float_height_m"),
    "mapanything": ("pretrained", "hydra_config", "hydra_overrides", "geometric_inputs"),
}


def teacher_fingerprint(model_cfg: Any) -> dict[str, Any]:
    """What identifies a teacher: its name, the sha256 of its checkpoint file (None without one) and the model
    fields that change its outputs (:data:`TEACHER_FIELDS`)."""
    from coopmap.models.factory import as_model_config

    cfg = asdict(as_model_config(model_cfg))
    ckpt = cfg["checkpoint"]
    if ckpt and not os.path.isfile(ckpt):
        raise CheckpointError(f"{ckpt}: no such teacher checkpoint file")
    fields = {k: cfg[k] for k in TEACHER_FIELDS.get(cfg["name"], ())}
    return {"name": cfg["name"], "checkpoint_sha256": file_sha256(ckpt) if ckpt else None, "model": fields}


def data_fingerprint(data_cfg: Any) -> dict[str, Any]:
    """The data config fields that change the teacher's inputs (root made absolute)."""
    plain: dict = dict(OmegaConf.to_container(data_cfg, resolve=True) if isinstance(data_cfg, DictConfig) else data_cfg)
    out = {k: plain.get(k) for k in DATA_FINGERPRINT_KEYS}
    if out["root"] is not None:
        out["root"] = os.path.realpath(str(out["root"]))
    if out["resolution"] is not None:
        out["resolution"] = list(out["resolution"])
    return out


def sample_key(views: Sequence[Mapping], b: int) -> tuple[str, tuple[str, ...]]:
    """(effective mode, (scenario, timestamp, ego_agent_id)) of batch element ``b``."""
    instance = views[0]["instance"][b]
    parts = instance.split("/")
    if len(parts) != 4 or any(p in ("", ".", "..") for p in parts):
        raise DataError(instance, "view 'instance' must be '<scenario>/<timestamp>/<agent_id>/camera<k>'")
    if all("agent_index" in v for v in views):
        coop = any(int(v["agent_index"][b]) > 0 for v in views)
    else:
        coop = len(views) > 4
    return ("coop" if coop else "single"), tuple(parts[:3])


def _differences(cached: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(cached, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(cached) | set(current)):
            out += _differences(cached.get(key), current.get(key), f"{prefix}{key}.")
        return out
    return [] if cached == current else [f"{prefix.rstrip('.')}: cache has {cached!r}, now {current!r}"]


class TeacherCacheWriter:
    """Writes a cache directory; refuses to add to a cache made with another teacher or data config."""

    def __init__(self, out_dir: str, teacher: dict, data: dict, depth_stride: int | None = None):
        self.out_dir = os.fspath(out_dir)
        self.manifest = {
            "format": FORMAT, "version": VERSION, "teacher": teacher, "data": data,
            "depth_stride": depth_stride, "num_samples": 0, "complete": False,
        }
        path = os.path.join(self.out_dir, MANIFEST)
        if os.path.isfile(path):
            old = _read_manifest(path)
            diffs = _differences({k: old.get(k) for k in ("teacher", "data", "depth_stride")},
                                 {k: self.manifest[k] for k in ("teacher", "data", "depth_stride")})
            if diffs:
                raise CheckpointError(f"{path}: refusing to mix caches, the existing one differs: {'; '.join(diffs)}; "
                                      f"choose another out_dir or delete it")
        os.makedirs(self.out_dir, exist_ok=True)
        self._write_manifest()

    def add(self, views: Sequence[Mapping], targets: Sequence[Mapping[str, torch.Tensor]]) -> int:
        """Store the targets of every sample of a batch; returns the number of samples written."""
        B = views[0]["img"].shape[0]
        for b in range(B):
            mode, parts = sample_key(views, b)
            arrays = {"instances": np.array([v["instance"][b] for v in views])}
            for name, key in _ARRAYS.items():
                if key in targets[0]:
                    arrays[name] = np.stack([t[key][b].detach().cpu().float().numpy() for t in targets])
            path = os.path.join(self.out_dir, "samples", mode, *parts) + ".npz"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".tmp", "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]
            os.replace(path + ".tmp", path)
        self.manifest["num_samples"] += B
        return B

    def finish(self) -> dict:
        """Mark the cache complete (only a complete cache can be opened); returns the manifest."""
        self.manifest["complete"] = True
        self._write_manifest()
        return dict(self.manifest)

    def _write_manifest(self) -> None:
        path = os.path.join(self.out_dir, MANIFEST)
        with open(path + ".tmp", "w") as f:
            json.dump(self.manifest, f, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)


def _read_manifest(path: str) -> dict:
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable teacher-cache manifest ({err})") from err
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CheckpointError(f"{path}: not a {FORMAT} v{VERSION} manifest (got version {manifest.get('version')!r}; "
                              "rebuild the cache with `coopmap teacher-cache`)")
    return manifest


class TeacherCache:
    """A finished teacher cache, checked against the teacher and data configs it is used with.

    Args:
        path: the cache directory (``out_dir`` of ``coopmap teacher-cache``).
        model_cfg, data_cfg: the teacher's ``model`` config and the training ``data`` config; when given, the
            cache must have been made with the same ones (else CheckpointError saying what differs).
    """

    def __init__(self, path: str, model_cfg: Any = None, data_cfg: Any = None):
        self.path = os.fspath(path)
        manifest_path = os.path.join(self.path, MANIFEST)
        if not os.path.isfile(manifest_path):
            raise CheckpointError(f"{self.path}: no teacher cache here (missing {MANIFEST}); run `coopmap teacher-cache`")
        self.manifest = _read_manifest(manifest_path)
        if not self.manifest.get("complete"):
            raise CheckpointError(f"{self.path}: the teacher cache is incomplete (interrupted run?); build it again")
        if model_cfg is not None or data_cfg is not None:
            self.check_compatible(model_cfg, data_cfg)

    def check_compatible(self, model_cfg: Any = None, data_cfg: Any = None) -> None:
        """Raise CheckpointError unless the cache was made with this teacher (checkpoint hash) and data config."""
        diffs = []
        if model_cfg is not None:
            diffs += _differences(self.manifest["teacher"], teacher_fingerprint(model_cfg), "teacher.")
        if data_cfg is not None:
            diffs += _differences(self.manifest["data"], data_fingerprint(data_cfg), "data.")
        if diffs:
            raise CheckpointError(
                f"{self.path}: the teacher cache was made with another teacher or data config: {'; '.join(diffs)}"
            )

    def lookup(self, views: Sequence[Mapping], mode: str | None = None) -> list[dict[str, torch.Tensor]]:
        """The cached targets of a batch, per view, as the online teacher gives them (float32, views' device).

        ``mode`` overrides the sample's effective mode in the key (normally leave it None).
        """
        device = views[0]["img"].device
        per_sample = [self._load(views, b, mode) for b in range(views[0]["img"].shape[0])]
        out = []
        for i in range(len(views)):
            out.append({
                key: torch.from_numpy(np.stack([s[name][i] for s in per_sample])).to(device)
                for name, key in _ARRAYS.items() if name in per_sample[0]
            })
        return out

    def _load(self, views: Sequence[Mapping], b: int, mode: str | None) -> dict[str, np.ndarray]:
        eff_mode, parts = sample_key(views, b)
        path = os.path.join(self.path, "samples", mode or eff_mode, *parts) + ".npz"
        if not os.path.isfile(path):
            raise CheckpointError(
                f"{path}: the teacher cache has no entry for sample '{'/'.join(parts)}' (mode {mode or eff_mode}); "
                f"was it built for this split and mode?"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{path}: unreadable teacher-cache entry ({err})") from err
        want = [v["instance"][b] for v in views]
        if list(arrays["instances"]) != want:
            raise CheckpointError(f"{path}: cached views {list(arrays['instances'])} differ from the batch's {want}")
        return arrays
