"""The models on views read by the dataset from the synthetic OPV2V tree (``synth_tree``), and the CLI end to end."""

import pytest
import torch

from coopmap.cli import main as cli_main
from coopmap.config import compose
from coopmap.data.dataset import make_loader
from coopmap.models.config import ModelConfig
from coopmap.models.contract import check_outputs, pred_camera_pose
from coopmap.models.factory import build_model
from coopmap.models.teacher import Teacher
from coopmap.models.teacher_cache import TeacherCache

SMALL = ["model.embed_dim=32", "model.depth=2", "model.num_heads=2"]


def _batches(root, mode, extra=()):
    cfg = compose("teacher_cache", [f"data.root={root}", f"data.mode={mode}", *extra])
    return cfg, list(make_loader(cfg.data, "train", shuffle=False, seed=0))


@pytest.mark.parametrize("mode", ["single", "coop"])
def test_oracle_and_tiny_on_dataset_views(synth_tree, mode):
    _, batches = _batches(synth_tree, mode, ["data.resolution=[56,42]"])
    views = batches[0]
    assert len(views) == (4 if mode == "single" else 12)
    preds = build_model(ModelConfig(name="oracle"))(views)
    check_outputs(views, preds)
    for view, pred in zip(views, preds):
        torch.testing.assert_close(pred_camera_pose(pred), view["camera_pose"], atol=1e-6, rtol=0)
        m = view["valid_mask"]
        assert m.sum() > 100
        torch.testing.assert_close(pred["pts3d"][m], view["pts3d"][m], atol=2e-5, rtol=0)
    scaled = build_model(ModelConfig(name="oracle", scale=1.25))(views)
    for view, pred in zip(views, scaled):
        m = view["valid_mask"]
        torch.testing.assert_close(pred["pts3d"][m], 1.25 * view["pts3d"][m], atol=3e-5, rtol=1e-6)
    torch.manual_seed(0)
    check_outputs(views, build_model(ModelConfig(name="tiny", embed_dim=32, depth=2, num_heads=2))(views))


def test_teacher_cache_cli_on_the_synthetic_tree(synth_tree, tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "teacher.pt"
    torch.save({"model": build_model(ModelConfig(name="tiny", embed_dim=32, depth=2, num_heads=2)).state_dict()}, ckpt)
    out = tmp_path / "cache"
    args = ["model=tiny", f"model.checkpoint={ckpt}", *SMALL, f"data.root={synth_tree}", "data.split=train",
            "data.mode=mixed", f"out_dir={out}", "device=cpu", "store_depth=true"]
    assert cli_main(["teacher-cache", *args]) == 0
    cfg, batches = _batches(synth_tree, "mixed", [a for a in args if a.startswith("model")])
    cache = TeacherCache(str(out), model_cfg=cfg.model, data_cfg=cfg.data)
    assert cache.manifest["num_samples"] == len(batches) == 6  # 3 frames x (single + coop)
    teacher = Teacher.from_config(cfg.model, depth_stride=4)
    for views in batches:
        online, cached = teacher.targets(views), cache.lookup(views)
        for o, c in zip(online, cached):
            for key in o:
                torch.testing.assert_close(c[key], o[key], atol=1e-6, rtol=0)
