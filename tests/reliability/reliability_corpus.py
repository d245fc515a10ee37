"""The corpus of malformed inputs: every case damages a private copy of a small synthetic tree, then runs a real
``coopmap`` command on it. ``docs/reliability.md`` lists the same cases (a test compares the two).

A case's ``make(root, work)`` damages the tree at ``root`` (or writes a bad file under ``work``) and returns what
the command's message must name (a path) and the extra command-line arguments. ``expect``:

- ``skip``: the command goes on and records the reason (a ``coopmap index`` problem line, exit 1 by design; a
  ``skipped: <file>: <reason>`` row in eval's ``coop_metrics.csv``; a row of train's ``skipped_samples.csv``;
  a ``skipped: ...`` row of filter's ``filter_metrics.csv``), exit 0 otherwise;
- ``stop``: exit 2 and exactly one stderr line ``coopmap <cmd>: error: <path>: <reason>``, no traceback;
- ``accept``: the input is valid though unusual (NaN padding of organised clouds): exit 0, every row ok.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from coopmap.data.pcd_io import read_pcd, write_pcd

SPLIT = "test"
#: a file that a payload tries to create: its existence would prove that untrusted data ran code.
PWNED = "PWNED"


@dataclass(frozen=True)
class Made:
    """What a case's damage produced: the path the message must name, extra arguments for the command."""

    path: Path
    args: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    name: str
    #: the damaged input, in words (the docs' table)
    what: str
    #: index | eval | train | filter (the coopmap subcommand)
    command: str
    make: Callable[[Path, Path], Made]
    #: skip | stop | accept
    expect: str
    #: regex the recorded reason / the error line must match
    reason: str
    #: eval: the mode evaluated (the damaged file belongs to the ego for single, to the cooperator for coop)
    mode: str = "single"


# --- the tree --------------------------------------------------------------------------------------------------

def scenario(root: Path) -> Path:
    return next(p for p in sorted((root / SPLIT).iterdir()) if p.is_dir())


def agent(root: Path, i: int) -> Path:
    """Agent folder i in string order: 0 is the ego (OpenCOOD's first CAV), 1 its cooperator."""
    return sorted(p for p in scenario(root).iterdir() if p.is_dir())[i]


def stamp(root: Path, t: int) -> str:
    return sorted(p.stem for p in agent(root, 0).glob("*.yaml"))[t]


def frame_file(root: Path, a: int, t: int, suffix: str) -> Path:
    """e.g. frame_file(root, 0, 0, ".pcd"): the ego's first LiDAR sweep."""
    return agent(root, a) / f"{stamp(root, t)}{suffix}"


def _replace(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def _rewrite_pcd(path: Path, encoding: str, cut: float | None = None, nan_rows: float = 0.0) -> None:
    cloud = read_pcd(path)
    pts = cloud.points.copy()
    if nan_rows:
        pts[:: int(round(1 / nan_rows))] = np.nan
    write_pcd(path, pts, cloud.intensity, data=encoding)
    if cut is not None:
        raw = path.read_bytes()
        header_end = raw.index(b"DATA") + raw[raw.index(b"DATA"):].index(b"\n") + 1
        _replace(path, raw[: header_end + int((len(raw) - header_end) * cut)])


def _edit_yaml(path: Path, edit: Callable[[dict], None]) -> None:
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    _replace(path, yaml.safe_dump(doc, sort_keys=False).encode())


# --- .pcd --------------------------------------------------------------------------------------------------------

def pcd_ascii_truncated(root, work):
    p = frame_file(root, 0, 0, ".pcd")
    _rewrite_pcd(p, "ascii", cut=0.6)
    return Made(p)


def pcd_binary_truncated(root, work):
    p = frame_file(root, 0, 0, ".pcd")
    _rewrite_pcd(p, "binary", cut=0.5)
    return Made(p)


def pcd_compressed_truncated(root, work):
    p = frame_file(root, 0, 0, ".pcd")
    _rewrite_pcd(p, "binary_compressed", cut=0.5)
    return Made(p)


def pcd_compressed_corrupt(root, work):
    p = frame_file(root, 0, 0, ".pcd")
    _rewrite_pcd(p, "binary_compressed")
    raw = bytearray(p.read_bytes())
    start = raw.index(b"DATA binary_compressed\n") + len(b"DATA binary_compressed\n") + 8
    raw[start] = 0xFF  # a back-reference before the start of the output
    _replace(p, bytes(raw))
    return Made(p)


def pcd_empty(root, work):
    p = frame_file(root, 0, 0, ".pcd")
    _replace(p, b"")
    return Made(p)


def pcd_not_a_pcd(root, work):
    p = frame_file(root, 0, 0, ".pcd")
    _replace(p, frame_file(root, 0, 0, "_camera0.png").read_bytes())
    return Made(p)


def pcd_no_xyz_fields(root, work):
    p = frame_file(root, 0, 0, ".pcd")
    _replace(p, p.read_bytes().replace(b"FIELDS x y z", b"FIELDS a b c", 1))
    return Made(p)


def pcd_bad_data_keyword(root, work):
    p = frame_file(root, 0, 0, ".pcd")
    _replace(p, p.read_bytes().replace(b"DATA binary", b"DATA binary_lz4", 1))
    return Made(p)


def pcd_ascii_garbage_number(root, work):
    p = frame_file(root, 0, 0, ".pcd")
    _rewrite_pcd(p, "ascii")
    lines = p.read_bytes().split(b"\n")
    i = next(k for k, line in enumerate(lines) if line.startswith(b"DATA")) + 5
    lines[i] = b"1.5 2.0x 3.0 0"
    _replace(p, b"\n".join(lines))
    return Made(p)


def pcd_nan_points(root, work):
    p = frame_file(root, 0, 0, ".pcd")
    _rewrite_pcd(p, "binary_compressed", nan_rows=0.1)
    return Made(p)


def pcd_all_nan(root, work):
    p = frame_file(root, 0, 0, ".pcd")
    _rewrite_pcd(p, "ascii", nan_rows=1.0)
    return Made(p)


# --- agent .yaml -------------------------------------------------------------------------------------------------

def yaml_empty(root, work):
    p = frame_file(root, 0, 0, ".yaml")
    _replace(p, b"")
    return Made(p)


def yaml_not_mapping(root, work):
    p = frame_file(root, 0, 0, ".yaml")
    _replace(p, b"- 1\n- 2\n")
    return Made(p)


def yaml_invalid_syntax(root, work):
    p = frame_file(root, 0, 0, ".yaml")
    _replace(p, b"lidar_pose: [1, 2\ncamera0: {cords: ]\n")
    return Made(p)


def yaml_missing_lidar_pose(root, work):
    p = frame_file(root, 0, 0, ".yaml")
    _edit_yaml(p, lambda d: d.pop("lidar_pose"))
    return Made(p)


def yaml_nan_lidar_pose(root, work):
    p = frame_file(root, 0, 0, ".yaml")
    _edit_yaml(p, lambda d: d["lidar_pose"].__setitem__(1, math.nan))
    return Made(p)


def yaml_python_tag(root, work):
    p = frame_file(root, 0, 0, ".yaml")
    text = p.read_text().replace("lidar_pose:", f"lidar_pose: !!python/object/apply:os.system ['touch {work / PWNED}']"
                                 "\nold_lidar_pose:", 1)
    _replace(p, text.encode())
    return Made(p)


def yaml_missing_cords(root, work):
    p = frame_file(root, 0, 0, ".yaml")
    _edit_yaml(p, lambda d: d["camera2"].pop("cords"))
    return Made(p)


def yaml_missing_intrinsic(root, work):
    p = frame_file(root, 0, 0, ".yaml")
    _edit_yaml(p, lambda d: d["camera1"].pop("intrinsic"))
    return Made(p)


def yaml_string_in_cords(root, work):
    p = frame_file(root, 0, 0, ".yaml")
    _edit_yaml(p, lambda d: d["camera0"]["cords"].__setitem__(4, "north-east"))
    return Made(p)


def yaml_nan_true_ego_pos(root, work):
    p = frame_file(root, 0, 0, ".yaml")
    _edit_yaml(p, lambda d: d["true_ego_pos"].__setitem__(0, math.inf))
    return Made(p)


def yaml_singular_intrinsic(root, work):
    p = frame_file(root, 0, 0, ".yaml")
    _edit_yaml(p, lambda d: d["camera3"].__setitem__("intrinsic", [[0.0, 0.0, 100.0], [0.0, 0.0, 75.0],
                                                                  [0.0, 0.0, 1.0]]))
    return Made(p)


def yaml_bad_vehicle(root, work):
    p = frame_file(root, 0, 0, ".yaml")

    def edit(d):
        vid = next(iter(d["vehicles"]))
        d["vehicles"][vid]["extent"] = [2.0, -1.0, 0.8]

    _edit_yaml(p, edit)
    return Made(p)


def data_protocol_python_tag(root, work):
    p = scenario(root) / "data_protocol.yaml"
    tag = f"synthetic: !!python/object/apply:os.system ['touch {work / PWNED}']\nold_synthetic:"
    _replace(p, p.read_text().replace("synthetic:", tag, 1).encode())
    return Made(p)


# --- camera images -----------------------------------------------------------------------------------------------

def png_missing(root, work):
    p = frame_file(root, 0, 0, "_camera2.png")
    p.unlink()
    return Made(p)


def png_zero_bytes(root, work):
    p = frame_file(root, 0, 0, "_camera1.png")
    _replace(p, b"")
    return Made(p)


def png_truncated(root, work):
    p = frame_file(root, 0, 0, "_camera3.png")
    _replace(p, p.read_bytes()[:400])
    return Made(p)


def png_wrong_size(root, work):
    from PIL import Image

    p = frame_file(root, 0, 0, "_camera1.png")
    with Image.open(p) as im:
        big = im.resize((im.width * 2, im.height * 2))
    p.unlink()
    big.save(p)
    return Made(p)


def png_cooperator_truncated(root, work):
    p = frame_file(root, 1, 1, "_camera0.png")
    _replace(p, p.read_bytes()[:300])
    return Made(p)


# --- folders -----------------------------------------------------------------------------------------------------

def agent_missing_timestamp(root, work):
    folder = agent(root, 1)
    for f in folder.glob(f"{stamp(root, 1)}*"):
        f.unlink()
    return Made(folder)


def agent_folder_not_an_id(root, work):
    folder = scenario(root) / "camera_backup"
    folder.mkdir()
    (folder / "notes.txt").write_text("copied by hand\n")
    return Made(folder)


def _only_rsu(root: Path) -> Path:
    import shutil

    shutil.rmtree(agent(root, 1))
    ego = agent(root, 0)
    ego.rename(ego.with_name("-1"))
    return scenario(root)


def scenario_only_rsu(root, work):
    return Made(_only_rsu(root))


def eval_scenario_only_rsu(root, work):
    _only_rsu(root)
    return Made(root / SPLIT)


def split_no_scenarios(root, work):
    (root / "validate").mkdir()
    return Made(root / "validate")


def eval_split_no_scenarios(root, work):
    (root / "validate").mkdir()
    return Made(root / "validate", ["data.split=validate"])


# --- checkpoints, teacher cache, predictions --------------------------------------------------------------------

def _tiny_state(**sizes) -> dict[str, torch.Tensor]:
    from coopmap.models.factory import build_model

    torch.manual_seed(0)
    return build_model({"name": "tiny", **sizes}).state_dict()


def _tiny_checkpoint(path: Path, **sizes) -> Path:
    torch.save({"model": _tiny_state(**sizes)}, path)
    return path


def checkpoint_truncated(root, work):
    p = _tiny_checkpoint(work / "model.pt")
    _replace(p, p.read_bytes()[: p.stat().st_size // 3])
    return Made(p, ["model=tiny", f"model.checkpoint={p}"])


def checkpoint_missing(root, work):
    p = work / "no_such_run" / "last.pt"
    return Made(p, ["model=tiny", f"model.checkpoint={p}"])


def checkpoint_other_config(root, work):
    p = _tiny_checkpoint(work / "model.pt", embed_dim=48, num_heads=4)
    return Made(p, ["model=tiny", f"model.checkpoint={p}"])


class _Payload:
    """Pickles as a call of os.system: what a malicious checkpoint carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def checkpoint_pickled_payload(root, work):
    p = work / "model.pt"
    torch.save({"model": _tiny_state(), "extra": _Payload(work / PWNED)}, p)
    return Made(p, ["model=tiny", f"model.checkpoint={p}"])


def train_resume_truncated(root, work):
    run = work / "run"
    run.mkdir()
    p = _tiny_checkpoint(run / "last.pt")
    _replace(p, p.read_bytes()[:1000])
    return Made(p)


def train_resume_pickled_payload(root, work):
    run = work / "run"
    run.mkdir()
    torch.save({"model": _tiny_state(), "step": 1, "extra": _Payload(work / PWNED)}, run / "last.pt")
    return Made(run / "last.pt")


def train_resume_other_config(root, work):
    run = work / "run"
    run.mkdir()
    p = _tiny_checkpoint(run / "last.pt", embed_dim=48, num_heads=4)
    return Made(p)


def _teacher_cache(root: Path, work: Path) -> Path:
    """A finished (empty) teacher cache made with teacher checkpoint A for the training cases' data config."""
    from coopmap.config import compose
    from coopmap.models.teacher_cache import TeacherCacheWriter, data_fingerprint, teacher_fingerprint

    teacher = _tiny_checkpoint(work / "teacher_a.pt")
    cfg = compose("teacher_cache", [f"data.root={root}", f"data.split={SPLIT}", "data.resolution=[56,42]",
                                    "model=tiny", f"model.checkpoint={teacher}", f"out_dir={work / 'cache'}"])
    TeacherCacheWriter(cfg.out_dir, teacher_fingerprint(cfg.model), data_fingerprint(cfg.data)).finish()
    return work / "cache"


def teacher_cache_other_checkpoint(root, work):
    cache = _teacher_cache(root, work)
    other = _tiny_checkpoint(work / "teacher_b.pt", init_scale_m=20.0)
    other_state = torch.load(other, weights_only=True)
    other_state["model"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in other_state["model"].items()}
    torch.save(other_state, other)
    return Made(cache, ["experiment=stage2_mask_distill", f"distill.teacher_cache={cache}",
                        f"distill.teacher_checkpoint={other}"])


def teacher_cache_incomplete(root, work):
    import json

    cache = _teacher_cache(root, work)
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["complete"] = False
    (cache / "manifest.json").write_text(json.dumps(manifest))
    return Made(cache, ["experiment=stage2_mask_distill", f"distill.teacher_cache={cache}"])


def predictions_nan(root, work):
    p = work / "nan.pt"
    state = {k: torch.full_like(v, math.nan) if v.is_floating_point() else v for k, v in _tiny_state().items()}
    torch.save({"model": state}, p)
    return Made(Path("non-finite prediction"), ["model=tiny", f"model.checkpoint={p}"])


def predictions_inf(root, work):
    p = work / "inf.pt"
    state = _tiny_state()
    state = {k: (v * math.inf if v.is_floating_point() and v.dim() > 1 else v) for k, v in state.items()}
    torch.save({"model": state}, p)
    return Made(Path("non-finite prediction"), ["model=tiny", f"model.checkpoint={p}"])


# --- training on damaged samples ---------------------------------------------------------------------------------

def train_bad_pcd(root, work):
    return pcd_binary_truncated(root, work)


def train_bad_png_worker(root, work):
    p = frame_file(root, 1, 0, "_camera2.png")
    _replace(p, b"")
    return Made(p, ["data.num_workers=1"])


def eval_bad_pcd_worker(root, work):
    made = pcd_binary_truncated(root, work)
    return Made(made.path, ["eval.workers=1"])


def train_every_sample_bad(root, work):
    for t in (0, 1):
        p = frame_file(root, 0, t, ".pcd")
        _replace(p, p.read_bytes()[:200])
    return Made(root / SPLIT)


# --- filter: damaged eval outputs ------------------------------------------------------------------------------

def _eval_output(root: Path, work: Path) -> Path:
    """``coopmap eval ... eval.save_points=true`` of the (intact) tree into work/eval (single mode, 2 frames)."""
    from coopmap.config import compose
    from coopmap.evaluation.runner import evaluate

    out = work / "eval"
    evaluate(compose("eval", [f"data.root={root}", f"data.split={SPLIT}", "model=oracle", "data.resolution=[56,42]",
                              f"out_dir={out}", "eval.progress=false", "eval.save_points=true",
                              "eval.modes=[single]"]))
    return out


def _saved_cloud(root: Path, work: Path) -> Path:
    return sorted((_eval_output(root, work) / "points" / "single").glob("*.npz"))[0]


def _resave(path: Path, **change) -> None:
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    arrays.update(change)
    for k in [k for k, v in change.items() if v is None]:
        del arrays[k]
    path.unlink()
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def filter_npz_truncated(root, work):
    p = _saved_cloud(root, work)
    _replace(p, p.read_bytes()[: p.stat().st_size // 2])
    return Made(p)


def filter_npz_missing_array(root, work):
    p = _saved_cloud(root, work)
    _resave(p, pred_conf=None)
    return Made(p)


def filter_npz_wrong_shape(root, work):
    p = _saved_cloud(root, work)
    with np.load(p) as d:
        pts = d["pred_points"]
    _resave(p, pred_points=pts[:, :2])
    return Made(p)


def filter_npz_pickled_object(root, work):
    p = _saved_cloud(root, work)
    _resave(p, pred_points=np.array([_Payload(work / PWNED)], dtype=object))
    return Made(p)


def filter_npz_nan_inf_points(root, work):
    p = _saved_cloud(root, work)
    with np.load(p) as d:
        pts = d["pred_points"].copy()
    pts[::7] = np.nan
    pts[3::11, 1] = np.inf
    _resave(p, pred_points=pts)
    return Made(p)


def filter_csv_hostile_key(root, work):
    out = _eval_output(root, work)
    csv_path = out / "coop_metrics.csv"
    text = csv_path.read_text().splitlines(keepends=True)
    row = text[1].split(",")
    row[0] = "../../../../escaped"
    _replace(csv_path, ("".join(text) + ",".join(row)).encode())
    return Made(Path("refusing a frame key part '../../../../escaped'"))


def filter_pred_empty_folder(root, work):
    (work / "eval").mkdir()
    return Made(work / "eval")


def filter_pred_missing(root, work):
    return Made(work / "eval")


# --- the table ---------------------------------------------------------------------------------------------------

CASES: list[Case] = [
    Case("pcd_ascii_truncated", "ascii .pcd cut at 60 %", "eval", pcd_ascii_truncated, "skip", r"truncated"),
    Case("pcd_binary_truncated", "binary .pcd cut at 50 %", "eval", pcd_binary_truncated, "skip", r"truncated"),
    Case("pcd_compressed_truncated", "binary_compressed .pcd cut at 50 %", "eval", pcd_compressed_truncated,
         "skip", r"truncated"),
    Case("pcd_compressed_corrupt", "binary_compressed .pcd with a corrupt LZF stream", "eval",
         pcd_compressed_corrupt, "skip", r"corrupt LZF"),
    Case("pcd_empty", "zero-byte .pcd", "eval", pcd_empty, "skip", r"not a PCD file"),
    Case("pcd_not_a_pcd", ".pcd holding a PNG", "eval", pcd_not_a_pcd, "skip", r"not a PCD file"),
    Case("pcd_no_xyz_fields", ".pcd header without x y z fields", "eval", pcd_no_xyz_fields, "skip",
         r"no field\(s\) x, y, z"),
    Case("pcd_bad_data_keyword", ".pcd header with DATA binary_lz4", "eval", pcd_bad_data_keyword, "skip",
         r"DATA must be ascii, binary or binary_compressed"),
    Case("pcd_ascii_garbage_number", "ascii .pcd with a token '2.0x'", "eval", pcd_ascii_garbage_number, "skip",
         r"2\.0x"),
    Case("pcd_nan_points", "binary_compressed .pcd with 10 % NaN points", "eval", pcd_nan_points, "accept",
         r"ok"),
    Case("pcd_all_nan", "ascii .pcd whose points are all NaN", "eval", pcd_all_nan, "skip", r"no finite point"),
    Case("yaml_empty", "zero-byte agent .yaml", "index", yaml_empty, "skip", r"missing key 'lidar_pose'"),
    Case("yaml_not_mapping", "agent .yaml holding a list", "index", yaml_not_mapping, "skip",
         r"expected a mapping"),
    Case("yaml_invalid_syntax", "agent .yaml that is not YAML", "index", yaml_invalid_syntax, "skip",
         r"invalid YAML"),
    Case("yaml_missing_lidar_pose", "agent .yaml without lidar_pose", "index", yaml_missing_lidar_pose, "skip",
         r"missing key 'lidar_pose'"),
    Case("yaml_nan_lidar_pose", "lidar_pose with NaN", "index", yaml_nan_lidar_pose, "skip",
         r"'lidar_pose' has a non-finite value"),
    Case("yaml_python_tag", "lidar_pose as a !!python/object/apply:os.system tag", "index", yaml_python_tag,
         "skip", r"'lidar_pose' must be a list of 6 numbers"),
    Case("yaml_missing_cords", "camera2 without cords", "eval", yaml_missing_cords, "skip",
         r"missing key 'camera2.cords'"),
    Case("yaml_missing_intrinsic", "camera1 without intrinsic", "eval", yaml_missing_intrinsic, "skip",
         r"missing key 'camera1.intrinsic'"),
    Case("yaml_string_in_cords", "a string in camera0.cords", "eval", yaml_string_in_cords, "skip",
         r"'camera0.cords' has a non-number 'north-east'"),
    Case("yaml_inf_true_ego_pos", "true_ego_pos with inf", "eval", yaml_nan_true_ego_pos, "skip",
         r"'true_ego_pos' has a non-finite value"),
    Case("yaml_singular_intrinsic", "camera3.intrinsic with zero focal lengths", "eval", yaml_singular_intrinsic,
         "skip", r"'camera3.intrinsic' is not an invertible camera matrix"),
    Case("yaml_bad_vehicle", "a vehicle with a negative extent", "eval", yaml_bad_vehicle, "skip",
         r"extent' must be non-negative"),
    Case("data_protocol_python_tag", "data_protocol.yaml with a !!python/object/apply tag", "index",
         data_protocol_python_tag, "skip", r"invalid YAML: could not determine a constructor"),
    Case("png_missing", "camera2 .png missing", "index", png_missing, "skip",
         r"missing .*_camera2\.png; frame skipped"),
    Case("png_zero_bytes", "zero-byte camera1 .png", "eval", png_zero_bytes, "skip", r"unreadable image"),
    Case("png_truncated", "camera3 .png cut to 400 bytes", "eval", png_truncated, "skip", r"unreadable image"),
    Case("png_wrong_size", "camera1 .png at twice the size of its intrinsics", "eval", png_wrong_size, "skip",
         r"image is 400x300 but camera1.intrinsic"),
    Case("png_cooperator_truncated", "a cooperator's camera0 .png cut (coop mode)", "eval",
         png_cooperator_truncated, "skip", r"unreadable image", mode="coop"),
    Case("agent_missing_timestamp", "an agent lacks a timestamp the other has", "index", agent_missing_timestamp,
         "skip", r"mismatched timestamps: 1 frame"),
    Case("agent_folder_not_an_id", "a non-integer folder among the agents", "index", agent_folder_not_an_id,
         "skip", r"not an agent folder"),
    Case("scenario_only_rsu", "a scenario whose only agent is an RSU (-1)", "index", scenario_only_rsu, "skip",
         r"only roadside units \(-1\)"),
    Case("eval_scenario_only_rsu", "eval of a split whose only scenario has only an RSU", "eval",
         eval_scenario_only_rsu, "stop", r"no usable sample in split 'test'"),
    Case("split_no_scenarios", "an empty split folder", "index", split_no_scenarios, "skip", r"empty split folder"),
    Case("eval_split_no_scenarios", "eval of an empty split", "eval", eval_split_no_scenarios, "stop",
         r"no usable sample in split 'validate'"),
    Case("checkpoint_truncated", "model.checkpoint cut to a third", "eval", checkpoint_truncated, "stop",
         r"not a readable torch checkpoint"),
    Case("checkpoint_missing", "model.checkpoint that does not exist", "eval", checkpoint_missing, "stop",
         r"no such checkpoint file"),
    Case("checkpoint_other_config", "model.checkpoint of another model config (embed_dim 48)", "eval",
         checkpoint_other_config, "stop", r"does not fit the model 'tiny' built from the config"),
    Case("checkpoint_pickled_payload", "model.checkpoint carrying a pickled os.system call", "eval",
         checkpoint_pickled_payload, "stop", r"safe loader \(weights_only=True\) refuses"),
    Case("train_resume_truncated", "a truncated last.pt in the run folder (resume)", "train",
         train_resume_truncated, "stop", r"not a loadable checkpoint"),
    Case("train_resume_pickled_payload", "last.pt carrying a pickled os.system call (resume)", "train",
         train_resume_pickled_payload, "stop", r"not a loadable checkpoint .*Weights only load failed"),
    Case("train_resume_other_config", "last.pt of another model config (resume)", "train",
         train_resume_other_config, "stop", r"does not fit the model built from the config"),
    Case("teacher_cache_other_checkpoint", "a teacher cache made with another teacher checkpoint", "train",
         teacher_cache_other_checkpoint, "stop", r"made with another teacher or data config: "
         r"teacher.checkpoint_sha256"),
    Case("teacher_cache_incomplete", "an unfinished teacher cache", "train", teacher_cache_incomplete, "stop",
         r"the teacher cache is incomplete"),
    Case("predictions_nan", "a model whose predictions are NaN", "eval", predictions_nan, "skip",
         r"non-finite prediction 'pts3d'"),
    Case("predictions_inf", "a model whose predictions are inf / NaN", "eval", predictions_inf, "skip",
         r"non-finite prediction"),
    Case("eval_bad_pcd_worker", "a truncated .pcd read by an eval worker (eval.workers=1)", "eval",
         eval_bad_pcd_worker, "skip", r"truncated"),
    Case("filter_npz_truncated", "a saved cloud (.npz) cut in half", "filter", filter_npz_truncated, "skip",
         r"not an npz \(zip\) archive"),
    Case("filter_npz_missing_array", "a saved cloud without pred_conf", "filter", filter_npz_missing_array, "skip",
         r"missing array\(s\) pred_conf"),
    Case("filter_npz_wrong_shape", "a saved cloud whose pred_points are (N, 2)", "filter", filter_npz_wrong_shape,
         "skip", r"array 'pred_points' has shape"),
    Case("filter_npz_pickled_object", "a saved cloud holding a pickled os.system call", "filter",
         filter_npz_pickled_object, "skip", r"unreadable npz .*allow_pickle=False"),
    Case("filter_npz_nan_inf_points", "a saved cloud with NaN / inf predicted points", "filter",
         filter_npz_nan_inf_points, "accept", r"ok"),
    Case("filter_csv_hostile_key", "an eval CSV row whose scenario is ../../../../escaped", "filter",
         filter_csv_hostile_key, "skip", r"refusing a frame key part"),
    Case("filter_pred_empty_folder", "filter --pred of an empty folder", "filter", filter_pred_empty_folder, "stop",
         r"no coop_metrics.csv and no points"),
    Case("filter_pred_missing", "filter --pred of a missing folder", "filter", filter_pred_missing, "stop",
         r"not a folder"),
    Case("train_bad_pcd", "training on a tree with a truncated .pcd", "train", train_bad_pcd, "skip",
         r"truncated"),
    Case("train_bad_png_worker", "training with a zero-byte .png, data.num_workers=1", "train",
         train_bad_png_worker, "skip", r"unreadable image"),
    Case("train_every_sample_bad", "training where no sample loads", "train", train_every_sample_bad, "stop",
         r"no sample of epoch 0 could be loaded"),
]
