import pytest
import torch
from fake_views import make_views

from coopmap.errors import ConfigError, ShapeError
from coopmap.models.config import ModelConfig
from coopmap.models.contract import check_outputs
from coopmap.models.factory import build_model
from coopmap.models.tiny import TinyMapAnything, sincos_position_codes

SMALL = dict(name="tiny", patch_size=14, embed_dim=32, depth=2, num_heads=2)


def _model(**kw):
    torch.manual_seed(0)
    return build_model(ModelConfig(**{**SMALL, **kw}))


@pytest.mark.parametrize("mode, n_agents, batch", [("single", 1, 1), ("coop", 2, 2), ("coop", 3, 1)])
def test_outputs_pass_the_contract(mode, n_agents, batch):
    views = make_views(mode, batch=batch, n_agents=n_agents)
    preds = _model()(views)
    assert len(preds) == 4 * (1 if mode == "single" else n_agents)
    check_outputs(views, preds)


@pytest.mark.parametrize("n_views", [1, 2, 5])
def test_any_number_of_views(n_views):
    views = make_views("coop", n_agents=2)[:n_views]
    check_outputs(views, _model()(views))


def test_default_config_at_synthetic_resolution():
    """The packaged tiny.yaml sizes at data=synthetic's 126x98 (9 x 7 patches of 14)."""
    from coopmap.config import compose

    cfg = compose("teacher_cache", ["data.root=/tmp/x", "model=tiny"])
    W, H = cfg.data.resolution
    views = make_views("single", height=H, width=W)
    model = build_model(cfg.model)
    assert isinstance(model, TinyMapAnything) and model.embed_dim == 96 and len(model.blocks) == 4
    preds = model(views)
    check_outputs(views, preds)
    # the scale token starts at init_scale_m metres
    torch.testing.assert_close(preds[0]["metric_scaling_factor"], torch.full((1, 1), 10.0), rtol=0.05, atol=0)


def test_bf16_autocast_keeps_the_heads_in_float32():
    """The trunk may run in bf16 (the trainer's autocast on GPU); the heads and the geometry stay float32."""
    views = make_views("coop", batch=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        preds = _model()(views)
    assert preds[3]["pts3d"].dtype == torch.float32
    check_outputs(views, preds)


def test_samples_of_a_batch_are_independent():
    """A sample's outputs do not depend on the other samples of its batch (needed by the teacher cache)."""
    model = _model().eval()
    views = make_views("coop", batch=2)
    first = [{k: v[:1] if torch.is_tensor(v) else v[:1] for k, v in view.items()} for view in views]
    with torch.no_grad():
        both, alone = model(views), model(first)
    for p2, p1 in zip(both, alone):
        torch.testing.assert_close(p2["pts3d"][:1], p1["pts3d"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(p2["metric_scaling_factor"][:1], p1["metric_scaling_factor"])


def test_every_parameter_gets_a_gradient():
    model = _model()
    views = make_views("coop", batch=1)
    preds = model(views)
    loss = sum(p["pts3d"].abs().mean() + p["conf"].mean() + p["non_ambiguous_mask_logits"].mean() for p in preds)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []


def test_view_zero_is_the_reference():
    """The reference embedding marks view 0: swapping views 0 and 1 changes the outputs beyond a permutation."""
    model = _model().eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.ref_view_embed, std=1.0)
        views = make_views("single")
        a = model(views)
        b = model([views[1], views[0]] + views[2:])
    assert not torch.allclose(a[1]["depth_along_ray"], b[0]["depth_along_ray"], atol=1e-4)


def test_bad_inputs_and_configs():
    views = make_views("single", height=42, width=50)
    with pytest.raises(ShapeError, match="multiples of model.patch_size=14"):
        _model()(views)
    views = make_views("single")
    views[2] = dict(views[2], img=views[2]["img"][..., :28, :])
    with pytest.raises(ShapeError, match="view 2, 'img'"):
        _model()(views)
    with pytest.raises(ConfigError, match="embed_dim=30"):
        _model(embed_dim=30)
    with pytest.raises(ConfigError, match="depth=1"):
        _model(depth=1)


def test_position_codes_are_distinct_and_bounded():
    codes = sincos_position_codes(7, 9, 32)
    assert codes.shape == (63, 32) and codes.abs().max() <= 1.0
    dist = torch.cdist(codes, codes) + torch.eye(63) * 10
    assert dist.min() > 0.1


def _l1_loss(views, preds):
    total = 0.0
    for view, pred in zip(views, preds):
        m = view["valid_mask"]
        total = total + (pred["pts3d"][m] - view["pts3d"][m]).abs().mean()
        total = total + (pred["depth_along_ray"][m] - view["depth_along_ray"][m]).abs().mean()
        total = total + (pred["cam_trans"] - view["camera_pose_trans"]).abs().mean()
        q, q_gt = pred["cam_quats"], view["camera_pose_quats"]
        total = total + torch.minimum((q - q_gt).abs().sum(-1), (q + q_gt).abs().sum(-1)).mean()
    return total / len(views)


def _overfit(steps, views, **kw):
    model = _model(embed_dim=64, **kw)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        loss = _l1_loss(views, model(views))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _synth_sample(root, mode="coop", resolution=(56, 42)):
    from coopmap.config import compose
    from coopmap.data.dataset import make_loader

    cfg = compose("teacher_cache", [f"data.root={root}", f"data.mode={mode}",
                                    f"data.resolution=[{resolution[0]},{resolution[1]}]"])
    return next(iter(make_loader(cfg.data, "train", shuffle=False, seed=0)))


def test_overfits_one_sample(synth_tree):
    """A real learning check: 200 AdamW steps on one coop sample of the synthetic tree (3 agents = 12 views,
    56x42, read by the dataset) cut the L1 loss on points, depth and poses > 10x (measured: ~20x, ~12 s)."""
    views = _synth_sample(synth_tree)
    assert len(views) == 12
    losses = _overfit(200, views)
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


@pytest.mark.slow
def test_overfits_one_sample_default_sizes(synth_tree):
    """The packaged sizes (embed 96, 4 blocks) at data=synthetic's 126x98: 300 steps cut the loss > 10x (~15x)."""
    views = _synth_sample(synth_tree, resolution=(126, 98))
    model = build_model(ModelConfig(name="tiny"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    losses = []
    for _ in range(300):
        loss = _l1_loss(views, model(views))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])
