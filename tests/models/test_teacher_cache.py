import json

import numpy as np
import pytest
import torch
from fake_views import make_views
from omegaconf import OmegaConf

from coopmap.cli import main as cli_main
from coopmap.config import TeacherCacheConfig
from coopmap.errors import CheckpointError, ConfigError
from coopmap.models import cli_teacher_cache
from coopmap.models.checkpoint import file_sha256
from coopmap.models.cli_teacher_cache import build_teacher_cache
from coopmap.models.config import ModelConfig
from coopmap.models.factory import build_model
from coopmap.models.teacher import CachedTeacherSource, Teacher, make_teacher_source
from coopmap.models.teacher_cache import (
    TeacherCache,
    TeacherCacheWriter,
    data_fingerprint,
    teacher_fingerprint,
)

SMALL = dict(name="tiny", patch_size=14, embed_dim=32, depth=2, num_heads=2)


def _batches():
    return [make_views("coop", batch=2, seed=0), make_views("single", batch=1, seed=1)]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        path = root / f"teacher{seed}.pt"
        torch.save({"model": build_model(ModelConfig(**SMALL)).state_dict()}, path)
        paths.append(str(path))
    return paths


def _cfg(out_dir, ckpt, **overrides):
    base = OmegaConf.structured(TeacherCacheConfig)
    cfg = {"model": {**SMALL, "checkpoint": ckpt}, "data": {"root": "/tmp/synth", "split": "train"},
           "out_dir": str(out_dir), "device": "cpu"}
    return OmegaConf.merge(base, cfg, overrides)


@pytest.fixture(scope="module")
def cache(tmp_path_factory, checkpoints):
    out = tmp_path_factory.mktemp("cache")
    cfg = _cfg(out, checkpoints[0], store_depth=True, depth_stride=7)
    manifest = build_teacher_cache(cfg, batches=_batches(), progress=False)
    return cfg, manifest


def test_cached_targets_equal_the_online_teacher(cache):
    cfg, manifest = cache
    assert manifest["num_samples"] == 3 and manifest["complete"]
    teacher = Teacher.from_config(cfg.model, depth_stride=7)
    cached = TeacherCache(cfg.out_dir, model_cfg=cfg.model, data_cfg=cfg.data)
    for views in _batches():
        online, stored = teacher.targets(views), cached.lookup(views)
        for o, s in zip(online, stored):
            assert set(o) == set(s) == {"teacher_cam_quats", "teacher_cam_trans", "teacher_metric_scale",
                                        "teacher_scene_scale", "teacher_depth"}
            for key in o:
                torch.testing.assert_close(s[key], o[key], atol=1e-6, rtol=0)


def test_manifest_records_the_checkpoint_hash_and_data(cache, checkpoints):
    cfg, _ = cache
    with open(f"{cfg.out_dir}/manifest.json") as f:
        manifest = json.load(f)
    assert manifest["teacher"]["checkpoint_sha256"] == file_sha256(checkpoints[0])
    assert manifest["data"]["split"] == "train" and manifest["data"]["resolution"] == [518, 392]
    entry = f"{cfg.out_dir}/samples/coop/scene_0/000068/641.npz"
    with np.load(entry, allow_pickle=False) as data:
        assert list(data["instances"]) == [f"scene_0/000068/{a}/camera{k}" for a in (641, 651) for k in range(4)]
        assert data["cam_quats"].shape == (8, 4) and data["depth"].shape == (8, 6, 8, 1)


def test_cache_from_another_checkpoint_is_refused(cache, checkpoints):
    cfg, _ = cache
    other = OmegaConf.merge(cfg.model, {"checkpoint": checkpoints[1]})
    with pytest.raises(CheckpointError, match=r"made with another teacher .*teacher\.checkpoint_sha256: cache has '[0-9a-f]{64}', now '[0-9a-f]{64}'"):
        TeacherCache(cfg.out_dir, model_cfg=other, data_cfg=cfg.data)
    bigger = OmegaConf.merge(cfg.model, {"embed_dim": 64})
    with pytest.raises(CheckpointError, match="teacher.model.embed_dim: cache has 32, now 64"):
        TeacherCache(cfg.out_dir, model_cfg=bigger)


def test_cache_with_other_data_is_refused(cache):
    cfg, _ = cache
    with pytest.raises(CheckpointError, match="data.split: cache has 'train', now 'validate'"):
        TeacherCache(cfg.out_dir, data_cfg=OmegaConf.merge(cfg.data, {"split": "validate"}))
    with pytest.raises(CheckpointError, match=r"data.resolution: cache has \[518, 392\], now \[126, 98\]"):
        TeacherCache(cfg.out_dir, data_cfg=OmegaConf.merge(cfg.data, {"resolution": [126, 98]}))


def test_training_uses_the_cache_and_checks_the_teacher(cache, checkpoints):
    cfg, _ = cache
    train_cfg = OmegaConf.create({"model": dict(SMALL), "data": OmegaConf.to_container(cfg.data),
                                  "distill": {"teacher_checkpoint": checkpoints[0], "teacher_model": None,
                                              "teacher_cache": cfg.out_dir}})
    source = make_teacher_source(train_cfg, "cpu")
    assert isinstance(source, CachedTeacherSource)
    views = _batches()[0]
    source.attach(views, "coop")
    assert views[3]["teacher_cam_trans"].shape == (2, 3)
    train_cfg.distill.teacher_checkpoint = checkpoints[1]
    with pytest.raises(CheckpointError, match="checkpoint_sha256"):
        make_teacher_source(train_cfg, "cpu")


def test_missing_sample_and_incomplete_cache(cache, tmp_path, checkpoints):
    cfg, _ = cache
    with pytest.raises(CheckpointError, match="no entry for sample 'scene_9/000068/641' \\(mode single\\)"):
        TeacherCache(cfg.out_dir).lookup(make_views("single", seed=9))
    writer = TeacherCacheWriter(tmp_path, teacher_fingerprint(cfg.model), data_fingerprint(cfg.data))
    with pytest.raises(CheckpointError, match="incomplete"):
        TeacherCache(str(tmp_path))
    with pytest.raises(CheckpointError, match="no teacher cache here"):
        TeacherCache(str(tmp_path / "nothing"))
    writer.finish()
    other = OmegaConf.merge(cfg.model, {"checkpoint": checkpoints[1]})
    with pytest.raises(CheckpointError, match="refusing to mix caches"):
        TeacherCacheWriter(tmp_path, teacher_fingerprint(other), data_fingerprint(cfg.data))


def test_cli_writes_a_cache(tmp_path, checkpoints, monkeypatch, capsys):
    monkeypatch.setattr(cli_teacher_cache, "_loader", lambda cfg: _batches())
    out = tmp_path / "cache"
    rc = cli_main(["teacher-cache", "model=tiny", f"model.checkpoint={checkpoints[0]}", "model.embed_dim=32",
                   "model.depth=2", "model.num_heads=2", "data.root=/tmp/synth", "data.split=train",
                   "data.mode=coop", f"out_dir={out}", "device=cpu"])
    assert rc == 0, capsys.readouterr().err
    assert "3 samples written" in capsys.readouterr().out
    assert TeacherCache(str(out)).manifest["data"]["mode"] == "coop"


def test_cli_help_lists_the_overrides(capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(["teacher-cache", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for word in ("model.checkpoint=CKPT", "data.root=ROOT", "out_dir=", "store_depth=false", "depth_stride=4"):
        assert word in text


def test_tiny_teacher_needs_a_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="model.checkpoint"):
        build_teacher_cache(_cfg(tmp_path, None), batches=[])
