import pytest
import torch
import torch.nn.functional as F
from fake_views import make_views
from omegaconf import OmegaConf
from torch import nn

from coopmap.errors import ShapeError
from coopmap.models.config import ModelConfig
from coopmap.models.factory import build_model
from coopmap.models.teacher import (
    TEACHER_DEPTH_KEY,
    TEACHER_KEYS,
    OnlineTeacherSource,
    Teacher,
    attach_teacher_targets,
    make_teacher_source,
)

SMALL = dict(name="tiny", patch_size=14, embed_dim=32, depth=2, num_heads=2)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    torch.manual_seed(1)
    model = build_model(ModelConfig(**SMALL))
    path = tmp_path_factory.mktemp("ckpt") / "teacher.pt"
    torch.save({"model": model.state_dict()}, path)
    return model, str(path)


def _student_step(student, teacher, views, opt):
    """One training step with a distillation-only loss (what the scale-distillation issue does)."""
    views = attach_teacher_targets(views, teacher.targets(views))
    preds = student(views)
    loss = sum(
        (torch.log(p["metric_scaling_factor"]) - torch.log(v["teacher_metric_scale"])).abs().mean()
        + (p["cam_trans"] - v["teacher_cam_trans"]).abs().mean()
        for p, v in zip(preds, views)
    )
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def test_teacher_is_frozen_and_outside_the_optimizer(pretrained):
    model, path = pretrained
    teacher = Teacher.from_config(ModelConfig(**SMALL, checkpoint=path))
    student = build_model(ModelConfig(**SMALL, checkpoint=path))
    student.train()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    before = {n: p.clone() for n, p in teacher.model.named_parameters()}
    _student_step(student, teacher, make_views("coop", batch=2), opt)
    in_optimizer = {id(p) for group in opt.param_groups for p in group["params"]}
    for name, p in teacher.model.named_parameters():
        assert not p.requires_grad and p.grad is None, name
        assert id(p) not in in_optimizer
        assert torch.equal(p, before[name])
    assert not teacher.model.training
    # not an nn.Module: a trainer holding it does not register (or DDP-wrap, or checkpoint) its parameters
    holder = nn.Module()
    holder.teacher = teacher
    assert list(holder.parameters()) == [] and "teacher" not in dict(holder.named_modules())
    assert all(p.requires_grad for p in student.parameters())


def test_copy_leaves_the_original_trainable(pretrained):
    model, _ = pretrained
    teacher = Teacher(model)
    assert all(p.requires_grad for p in model.parameters())
    assert all(not p.requires_grad for p in teacher.parameters())
    assert teacher.model is not model


def test_targets_are_the_teachers_outputs_without_grad(pretrained):
    model, path = pretrained
    teacher = Teacher.from_config({**SMALL, "checkpoint": path}, depth_stride=7)
    views = make_views("coop", batch=2)
    targets = teacher.targets(views)
    with torch.no_grad():
        preds = model.eval()(views)
    assert len(targets) == len(views)
    for t, p in zip(targets, preds):
        assert set(t) == set(TEACHER_KEYS) | {TEACHER_DEPTH_KEY}
        assert t["teacher_cam_quats"].shape == (2, 4) and t["teacher_cam_trans"].shape == (2, 3)
        assert t["teacher_metric_scale"].shape == (2, 1) and t[TEACHER_DEPTH_KEY].shape == (2, 6, 8, 1)
        assert not any(v.requires_grad for v in t.values())
        torch.testing.assert_close(t["teacher_cam_trans"], p["cam_trans"], atol=0, rtol=0)
        torch.testing.assert_close(t["teacher_metric_scale"], p["metric_scaling_factor"], atol=0, rtol=0)
        pooled = F.avg_pool2d(p["depth_along_ray"].permute(0, 3, 1, 2), 7).permute(0, 2, 3, 1)
        torch.testing.assert_close(t[TEACHER_DEPTH_KEY], pooled)
    for t, p, v in zip(targets, preds, views):  # the metric scene scale: mean distance on the labelled pixels
        lab = (v["depthmap"][..., 0] > 0) & v["valid_mask"]
        for b in range(2):
            expected = p["depth_along_ray"][b, ..., 0][lab[b]].double().mean()
            assert t["teacher_scene_scale"][b, 0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_attach_adds_keys_without_touching_the_inputs():
    views = make_views("single", batch=2)
    targets = [{"teacher_metric_scale": torch.ones(2, 1)} for _ in views]
    out = attach_teacher_targets(views, targets)
    assert "teacher_metric_scale" in out[0] and "teacher_metric_scale" not in views[0]
    assert out[0]["img"] is views[0]["img"]
    with pytest.raises(ShapeError, match="3 views of targets for 4"):
        attach_teacher_targets(views, targets[:3])
    with pytest.raises(ShapeError, match="view 0, 'teacher_metric_scale': batch 1"):
        attach_teacher_targets(views, [{"teacher_metric_scale": torch.ones(1, 1)} for _ in views])


def test_online_source_from_a_training_config(pretrained):
    _, path = pretrained
    cfg = OmegaConf.create({
        "model": {**SMALL},
        "data": {"root": "/tmp/x"},
        "distill": {"teacher_checkpoint": path, "teacher_model": None, "teacher_cache": None},
    })
    source = make_teacher_source(cfg, "cpu")
    assert isinstance(source, OnlineTeacherSource)
    views = make_views("coop")
    source.attach(views, "coop")  # in place, as the training loop calls it
    assert all(set(TEACHER_KEYS) <= set(v) for v in views)
