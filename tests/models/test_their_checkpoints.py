"""MapAnything's training checkpoints in: files written here in their layout (``train_tools.save_model``:
model, optimizer, scaler, a Hydra-composed ``args`` DictConfig pickled, epoch, a numpy ``best_so_far``) load as a
starting point and as the teacher without executing pickled code; any other pickled global is refused."""

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_views import make_views
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from coopmap.errors import CheckpointError
from coopmap.models.checkpoint import read_checkpoint
from coopmap.models.config import ModelConfig
from coopmap.models.factory import build_model
from coopmap.models.teacher import Teacher
from coopmap.models.tiny import TinyMapAnything
from fake_mapanything import FakeMapAnything, install_fake_package

SMALL_TINY = {"patch_size": 14, "embed_dim": 32, "depth": 2, "num_heads": 2}


def _their_args(tmp_path: Path) -> DictConfig:
    """A run config composed like theirs: a config tree with groups, defaults and interpolations."""
    root = tmp_path / "their_configs"
    (root / "model").mkdir(parents=True)
    (root / "train.yaml").write_text(
        "defaults:\n  - model: default\n  - _self_\noutput_dir: ${hydra:run.dir}\nepochs: 10\nlr: 1.0e-4\n"
        "train_criterion: \"ConfLoss(Regr3D(L21, norm_mode='avg_dis'), alpha=0.2)\"\n"
        "submodule_configs: {encoder: {lr: 2.5e-7}}\ncached: ${their_cached:}\n")
    (root / "model" / "default.yaml").write_text(
        "model_str: mapanything\nmodel_config:\n  name: mapanything\n  encoder_config: {patch_size: 16}\n"
        "  pretrained_checkpoint_path: null\ndata_norm_type: ${model.model_config.name}\n")
    if not OmegaConf.has_resolver("their_cached"):
        OmegaConf.register_new_resolver("their_cached", lambda: 7, use_cache=True)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(root), version_base=None):
        cfg = compose(config_name="train")
    GlobalHydra.instance().clear()
    assert cfg.cached == 7  # fills OmegaConf's resolver cache (a defaultdict in the pickle)
    return cfg


def _save_their_checkpoint(path: Path, net: torch.nn.Module, args, **extra) -> None:
    """``train_tools.save_model``'s layout, pickled by plain ``torch.save`` as they do."""
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    net(make_views("single", batch=1)) if isinstance(net, FakeMapAnything) else None
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                "scaler": torch.amp.GradScaler("cpu").state_dict(), "args": args, "epoch": 4,
                "best_so_far": np.float64(0.25), **extra}, path)


def _trained_fake() -> FakeMapAnything:
    net = FakeMapAnything()
    with torch.no_grad():
        for i, p in enumerate(net.parameters()):
            p.copy_(torch.linspace(-1, 1, p.numel()).reshape(p.shape) * (i + 1) * 0.01)
    return net


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_their_layout_really_is_refused_by_a_plain_safe_load(tmp_path):
    args = _their_args(tmp_path)
    buf = io.BytesIO()
    pickle.dump(args, buf, protocol=2)
    assert b"omegaconf.dictconfig" in buf.getvalue() and b"defaultdict" in buf.getvalue()
    path = tmp_path / "checkpoint-last.pth"
    _save_their_checkpoint(path, _trained_fake(), args)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_their_checkpoint_reads_as_plain_data(tmp_path):
    args = _their_args(tmp_path)
    net = _trained_fake()
    path = tmp_path / "checkpoint-final.pth"
    _save_their_checkpoint(path, net, args)
    ck = read_checkpoint(path)
    assert set(ck) == {"model", "optimizer", "scaler", "args", "epoch", "best_so_far"}
    assert ck["epoch"] == 4 and ck["best_so_far"] == 0.25 and type(ck["best_so_far"]) is float
    assert type(ck["args"]) is dict and ck["args"] == OmegaConf.to_container(args, resolve=False)
    assert ck["args"]["output_dir"] == "${hydra:run.dir}"  # their resolvers are not ours: left unresolved
    assert ck["args"]["submodule_configs"] == {"encoder": {"lr": 2.5e-7}}
    assert set(ck["model"]) == set(net.state_dict())
    for key, value in net.state_dict().items():
        assert torch.equal(ck["model"][key], value), key


def test_their_checkpoint_starts_a_model_and_a_teacher(tmp_path, monkeypatch):
    install_fake_package(monkeypatch)
    trained = _trained_fake()
    path = tmp_path / "checkpoint-last.pth"
    _save_their_checkpoint(path, trained, _their_args(tmp_path))
    student = build_model({"name": "mapanything", "checkpoint": str(path)})
    teacher = Teacher.from_config({"name": "mapanything", "checkpoint": str(path)})
    for model in (student.model, teacher.model.model):
        for key, value in trained.state_dict().items():
            assert torch.equal(model.state_dict()[key], value), key
    views = make_views("single", batch=1)
    targets = teacher.targets(views)
    with torch.no_grad():
        direct = student(views)  # the same weights: the teacher's targets are the student's outputs
    torch.testing.assert_close(targets[0]["teacher_cam_trans"], direct[0]["cam_trans"], rtol=0, atol=0)


def test_a_tiny_checkpoint_in_their_layout_loads_strictly(tmp_path):
    torch.manual_seed(0)
    trained = TinyMapAnything(ModelConfig(**SMALL_TINY))
    path = tmp_path / "checkpoint-3.pth"
    _save_their_checkpoint(path, trained, _their_args(tmp_path))
    model = build_model(ModelConfig(**SMALL_TINY, checkpoint=str(path)))
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize("where", ["top_level", "inside_args", "inside_a_list_in_args"])
def test_a_pickle_payload_anywhere_is_refused_in_one_line(tmp_path, where):
    marker = tmp_path / "PWNED"
    args = _their_args(tmp_path)
    extra = {}
    if where == "top_level":
        extra["extra"] = _Payload(marker)
    else:
        OmegaConf.set_struct(args, False)
        args._set_flag("allow_objects", True)
        if where == "inside_args":
            args.model.model_config.hook = _Payload(marker)
        else:
            args.callbacks = [1, {"cb": _Payload(marker)}]
    path = tmp_path / "checkpoint-last.pth"
    _save_their_checkpoint(path, _trained_fake(), args, **extra)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: holds Python objects that the safe loader (weights_only=True) refuses")
    assert "(posix.system)" in msg or "(os.system)" in msg
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        build_model({"name": "tiny", **SMALL_TINY, "checkpoint": str(path)})
    assert not marker.exists()
