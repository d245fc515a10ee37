"""trainer.lr_per_module: a plain override, MapAnything's own submodule names (through the adapter, on the fake
MapAnything), tiny's names, shared tensors, frozen modules, and the lr each parameter actually gets."""

import pytest
import torch

from coopmap.config import compose
from coopmap.errors import ConfigError
from coopmap.models.config import ModelConfig
from coopmap.models.mapanything import MapAnythingAdapter
from coopmap.models.tiny import TinyMapAnything
from coopmap.train.config import TrainerConfig
from coopmap.train.optim import build_optimizer, lr_module_names, param_groups, set_lr
from fake_mapanything import FakeMapAnything


def _lr_of(optimizer) -> dict[int, float]:
    return {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}


@pytest.mark.parametrize("override", ["trainer.lr_per_module={encoder:0.1,info_sharing:0.5}",
                                      "trainer.lr_per_module.encoder=0.1 trainer.lr_per_module.info_sharing=0.5"])
def test_plain_overrides_compose(override):
    cfg = compose("train", ["data.root=/x", *override.split()])
    assert dict(cfg.trainer.lr_per_module) == {"encoder": 0.1, "info_sharing": 0.5}


def test_a_non_number_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="lr_per_module"):
        compose("train", ["data.root=/x", "trainer.lr_per_module.encoder=fast"])
    with pytest.raises(ConfigError, match="trainer.lr_per_modul"):  # the rest of the trainer node stays closed
        compose("train", ["data.root=/x", "trainer.lr_per_modul.encoder=0.1"])


def test_mapanything_names_through_the_adapter():
    net = FakeMapAnything()
    model = MapAnythingAdapter(net)
    assert lr_module_names(model) == sorted(["dense_head", "dpt_feature_head", "dpt_regressor_head", "encoder",
                                             "info_sharing", "pose_head", "scale_head", "scale_token"])
    cfg = TrainerConfig(lr=1e-3, weight_decay=0.0,
                        lr_per_module={"encoder": 0.1, "info_sharing": 0.5, "dense_head": 0.2, "scale_token": 0.0})
    opt = build_optimizer(model, cfg)
    lr = _lr_of(opt)
    expect = {"encoder": 1e-4, "info_sharing": 5e-4, "dpt_feature_head": 2e-4, "dpt_regressor_head": 2e-4,
              "pose_head": 1e-3, "scale_head": 1e-3}
    for top, value in expect.items():
        for p in getattr(net, top).parameters():
            assert lr[id(p)] == pytest.approx(value), top
    assert not net.scale_token.requires_grad and id(net.scale_token) not in lr
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters())) - 1
    assert set_lr(opt, 1e-3, 0.5) == pytest.approx(5e-4)
    for p in net.encoder.parameters():
        assert _lr_of(opt)[id(p)] == pytest.approx(0.1 * 1e-3 * 0.5)


def test_first_adamw_step_moves_each_module_by_its_lr():
    torch.manual_seed(0)
    net = FakeMapAnything()
    model = MapAnythingAdapter(net)
    opt = build_optimizer(model, TrainerConfig(lr=1e-2, weight_decay=0.0, lr_per_module={"encoder": 0.1, "pose_head": 0.0}))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    views = [{"img": torch.randn(1, 3, 14, 28), "data_norm_type": ["dinov2"]} for _ in range(2)]
    preds = model(views)
    sum(p["pts3d"].sum() + p["cam_trans"].sum() for p in preds).backward()
    opt.step()
    after = net.state_dict()
    # Adam's first step is lr * g / (|g| + eps): |delta| = lr wherever the gradient is well above eps
    assert (after["encoder.weight"] - before["encoder.weight"]).abs().max() == pytest.approx(1e-3, rel=1e-3)
    assert (after["info_sharing.weight"] - before["info_sharing.weight"]).abs().max() == pytest.approx(1e-2, rel=1e-3)
    assert torch.equal(after["pose_head.weight"], before["pose_head.weight"])


def test_shared_tensors_with_conflicting_multipliers_and_unknown_names_are_refused():
    model = MapAnythingAdapter(FakeMapAnything())
    with pytest.raises(ConfigError, match=r"\['dense_head', 'dpt_feature_head'\] share parameter .* different"):
        param_groups(model, TrainerConfig(lr_per_module={"dense_head": 0.2, "dpt_feature_head": 0.1}))
    with pytest.raises(ConfigError, match=r"unknown submodule\(s\) \['model'\]; the model has \['dense_head'"):
        param_groups(model, TrainerConfig(lr_per_module={"model": 0.1}))
    param_groups(model, TrainerConfig(lr_per_module={"dense_head": 0.2, "dpt_feature_head": 0.2}))  # agree: fine


def test_tiny_names():
    model = TinyMapAnything(ModelConfig(embed_dim=32, depth=2, num_heads=2))
    assert {"blocks", "patch_embed", "scale_token", "ref_view_embed"} <= set(lr_module_names(model))
    opt = build_optimizer(model, TrainerConfig(lr=1e-3, lr_per_module={"blocks": 0.1, "scale_token": 0.0}))
    lr = _lr_of(opt)
    assert all(lr[id(p)] == pytest.approx(1e-4) for p in model.blocks.parameters())
    assert all(lr[id(p)] == pytest.approx(1e-3) for p in model.patch_embed.parameters())
    assert not model.scale_token.requires_grad and id(model.scale_token) not in lr
