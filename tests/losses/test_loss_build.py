import pytest
import torch
from loss_scenes import add_teacher, make_pose, make_views, perfect_preds, rot_z

from coopmap.errors import ConfigError
from coopmap.geometry import pose_from_quat_trans, pose_to_quat_trans
from coopmap.losses import build_criterion, load_loss_config
from coopmap.losses.config import LossConfig

#: every detail name of the criterion with every section on (the names training logs and ablations read).
STAGE2_DETAILS = {
    "base/pts3d", "base/depth", "base/rays", "base/pose_t", "base/pose_r", "base/scale", "base/n_valid",
    "depth/main", "depth/l1", "depth/n_valid", "depth/empty_views",
    "height/penalty", "height/n_pixels", "height/frac_above",
    "distill/scale", "distill/trans", "distill/rot", "distill/scale_abs_log", "distill/trans_m", "distill/rot_rad",
    "distill/n_views", "distill/s_abs_log",
    "coop/n_agents", "coop/pose_t", "coop/pose_r", "coop/n_pairs", "coop/rig_t", "coop/rig_r", "coop/box",
    "coop/box_pixels",
    "loss/base", "loss/depth", "loss/distill", "loss/coop", "loss/total",
}


def _scene():
    views = make_views(n_agents=2, n_cams=2, B=2, seed=1)
    teacher = perfect_preds(views, scale=1.1)
    add_teacher(views, teacher)
    preds = perfect_preds(views, scale=0.9, requires_grad=True)
    T = pose_from_quat_trans(preds[2]["cam_quats"], preds[2]["cam_trans"]) @ make_pose(rot_z(0.2), (1, 0, 0))
    q, t = pose_to_quat_trans(T)
    preds[2] = {**preds[2], "cam_quats": q, "cam_trans": t}
    up = torch.tensor([0.0, -10.0, 0.0], dtype=torch.float64) * ~views[1]["valid_mask"][..., None]  # -y: up
    preds[1] = {**preds[1], "pts3d_cam": preds[1]["pts3d_cam"] + 0.5, "pts3d": preds[1]["pts3d"] + up}
    return views, preds


@pytest.fixture(scope="module")
def default_value():
    views, preds = _scene()
    return build_criterion(load_loss_config([]))(views, preds)[0].detach()


def test_default_is_the_base_loss_only():
    crit = build_criterion(load_loss_config([]))
    assert crit.names == ["base"]
    views, preds = _scene()
    loss, d = crit(views, preds)
    assert loss.item() == pytest.approx(d["loss/base"].item()) and d["loss/total"].item() == loss.item()
    assert not any(k.startswith(("depth/", "height/", "distill/", "coop/")) for k in d)


def test_stage2_has_every_stable_detail_name_and_total_is_the_weighted_sum():
    cfg = load_loss_config(["loss.scale_distill_weight=0.5", "loss.coop_consistency_weight=2"], preset="stage2")
    crit = build_criterion(cfg)
    assert crit.names == ["base", "depth", "distill", "coop"]
    views, preds = _scene()
    loss, d = crit(views, preds)
    assert set(d) == STAGE2_DETAILS
    expected = d["loss/base"] + d["loss/depth"] + 0.5 * d["loss/distill"] + 2 * d["loss/coop"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    assert all(not v.requires_grad and v.dim() == 0 for v in d.values())
    loss.backward()


@pytest.mark.parametrize("override,section,changed", [
    ("loss.depth.mask_aware=true", "base", True),
    ("loss.depth.depth_weight=1", "depth", True),
    ("loss.depth.height_weight=1", "depth", True),
    ("loss.scale_distill_weight=1", "distill", True),
    ("loss.coop_consistency_weight=1", "coop", True),
])
def test_each_ablation_is_one_override(override, section, changed, default_value):
    views, preds = _scene()
    base = default_value
    crit = build_criterion(load_loss_config([override]))
    assert section in crit.names
    assert (crit(views, preds)[0].item() != pytest.approx(base.item())) is changed


OVERRIDE_PATHS = [
    "loss.depth.z_max=5", "loss.depth.z_min=-0.5", "loss.depth.robust=true", "loss.depth.height_frame=gt_rig",
    "loss.distill.scale_weight=2", "loss.distill.trans_weight=2", "loss.distill.rot_weight=2", "loss.distill.tau=0.3",
    "loss.distill.views=ego", "loss.consistency.mode=prior", "loss.consistency.max_dist=50",
    "loss.consistency.pose_t_weight=2", "loss.consistency.pose_r_weight=2", "loss.consistency.rig_t_weight=0",
    "loss.consistency.rig_r_weight=0", "loss.consistency.box_weight=0", "loss.consistency.prior_dist_weight=3",
    "loss.consistency.prior_tilt_weight=3", "loss.consistency.max_tilt_deg=5", "loss.base.weights.pose_r=0.5",
    "loss.base.log_space=false", "loss.base.mask_aware=true", "loss.depth.mask_aware=true",
    "loss.depth.depth_weight=0.5", "loss.depth.height_weight=0.2", "loss.scale_distill_weight=0.7",
    "loss.coop_consistency_weight=0.3",
]


def test_override_paths_compose():
    cfg = load_loss_config(OVERRIDE_PATHS)
    for override in OVERRIDE_PATHS:
        key, value = override.split("=")
        node = cfg
        for part in key.split(".")[1:]:
            node = node[part]
        assert str(node).lower() == value or float(node) == float(value), override
    assert build_criterion(cfg).names == ["base", "depth", "distill", "coop"]


def test_mask_aware_switch_reaches_the_base_loss_unless_overridden():
    assert load_loss_config(["loss.depth.mask_aware=true"]).base.mask_aware is True
    cfg = load_loss_config(["loss.depth.mask_aware=true", "loss.base.mask_aware=false"])
    assert cfg.base.mask_aware is False and cfg.depth.mask_aware is True


@pytest.mark.parametrize("override,match", [
    ("loss.depth.mask_awre=true", "mask_awre"),
    ("loss.distill.views=cav", "loss.distill.views"),
    ("loss.consistency.mode=gtt", "loss.consistency.mode"),
    ("loss.depth.height_frame=lidar", "height_frame"),
    ("loss.distill.tau=0", "tau"),
    ("loss.depth.z_max=high", "z_max"),
    ("loss.coop_consistency_weight=-1", "coop_consistency_weight"),
])
def test_bad_config_fails_naming_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_loss_config([override])


def test_build_from_dataclass_or_plain_dict():
    crit = build_criterion(LossConfig())
    assert crit.names == ["base"] and crit.sections["base"].cfg.mask_aware is False
    crit = build_criterion({"depth": {"mask_aware": True, "height_weight": 0.1}, "coop_consistency_weight": 1.0})
    assert crit.names == ["base", "depth", "coop"] and crit.sections["base"].cfg.mask_aware is True
    with pytest.raises(ConfigError, match="every loss term is off"):
        build_criterion({"base": {"weight": 0.0}})


def test_distillation_without_teacher_keys_fails_clearly():
    views = make_views()
    crit = build_criterion(load_loss_config(["loss.scale_distill_weight=1"]))
    with pytest.raises(ConfigError, match="teacher"):
        crit(views, perfect_preds(views))


def test_float32_batch_runs_and_backpropagates():
    views = make_views(n_agents=2, n_cams=2, dtype=torch.float32)
    add_teacher(views, perfect_preds(views, scale=1.2))
    preds = perfect_preds(views, scale=0.8, requires_grad=True)
    loss, d = build_criterion(load_loss_config([], preset="stage2"))(views, preds)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(torch.isfinite(p["pts3d"].grad).all() for p in preds)


def test_shared_batch_changes_nothing():
    """The criterion shares one LossBatch between its sections: same values as each section alone."""
    views, preds = _scene()
    crit = build_criterion(load_loss_config(["loss.scale_distill_weight=0.5"], preset="stage2"))
    total, d = crit(views, preds)
    alone = {name: crit.sections[name](views, preds)[0] for name in crit.names}
    for name, value in alone.items():
        assert d[f"loss/{name}"].item() == pytest.approx(value.item(), rel=1e-12)
    assert total.item() == pytest.approx(sum(crit.weights[k] * v.item() for k, v in alone.items()), rel=1e-12)


def test_empty_single_agent_sample_is_finite_and_reported():
    views = make_views(n_agents=1, n_cams=2, coverage=0.0, n_boxes=0)
    add_teacher(views, perfect_preds(views, scale=1.2))
    for v in views:
        v["boxes_count"] = torch.zeros_like(v["boxes_count"])
    preds = perfect_preds(views, scale=0.7, requires_grad=True)
    loss, d = build_criterion(load_loss_config([], preset="stage2"))(views, preds)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(x.grad).all() for p in preds for x in p.values()
                                        if x.grad is not None)
    assert d["coop/n_pairs"].item() == 0 and d["coop/pose_t"].item() == 0 and d["coop/box"].item() == 0
    assert d["depth/n_valid"].item() == 0 and d["depth/empty_views"].item() == 2 and d["base/n_valid"].item() == 0
    assert d["coop/box_pixels"].item() == 0 and d["depth/main"].item() == 0


def test_two_training_steps_of_the_tiny_model():
    tiny = pytest.importorskip("coopmap.models.tiny")
    from coopmap.models.config import ModelConfig

    torch.manual_seed(0)
    model = tiny.TinyMapAnything(ModelConfig(embed_dim=32, depth=2, num_heads=2))
    views = make_views(n_agents=2, n_cams=2, H=28, W=42, coverage=0.1, dtype=torch.float32)
    add_teacher(views, perfect_preds(views))
    for v in views:
        v["img"] = torch.randn(1, 3, 28, 42)
    crit = build_criterion(load_loss_config([], preset="stage2"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        loss, d = crit(views, model(views))
        loss.backward()
        opt.step()
        assert torch.isfinite(loss) and set(d) == STAGE2_DETAILS
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_a_loss_batch_must_wrap_the_same_views():
    from coopmap.losses.base import base_geometry_loss
    from coopmap.losses.batch import LossBatch

    views, preds = _scene()
    with pytest.raises(ValueError, match="same views"):
        base_geometry_loss(views, preds, batch=LossBatch(views, perfect_preds(views)))
