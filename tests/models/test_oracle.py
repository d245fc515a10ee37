import math

import pytest
import torch
from fake_views import make_views

from coopmap.config import compose
from coopmap.errors import ConfigError
from coopmap.geometry import geodesic_angle, invert_pose
from coopmap.models.config import ModelConfig
from coopmap.models.contract import check_outputs, pred_camera_pose
from coopmap.models.factory import build_model
from coopmap.models.oracle import ORACLE_CONF, oracle_predictions


@pytest.fixture(scope="module")
def coop():
    return make_views("coop", batch=2, n_agents=3)


def _oracle(**knobs):
    return build_model(ModelConfig(name="oracle", **knobs))


@pytest.mark.parametrize("mode, n_agents, n_views", [("single", 1, 4), ("coop", 2, 8), ("coop", 3, 5), ("coop", 2, 1)])
def test_outputs_pass_the_contract(mode, n_agents, n_views):
    views = make_views(mode, batch=2, n_agents=n_agents)[:n_views]
    check_outputs(views, _oracle()(views))
    check_outputs(views, _oracle(scale=1.25, agent_offset_m=2.0, agent_rot_deg=5.0, depth_noise_m=0.3)(views))


def test_reproduces_ground_truth_exactly(coop):
    preds = _oracle()(coop)
    for view, pred in zip(coop, preds):
        torch.testing.assert_close(pred_camera_pose(pred), view["camera_pose"], atol=1e-6, rtol=0)
        m = view["valid_mask"]
        torch.testing.assert_close(pred["pts3d"][m], view["pts3d"][m], atol=1e-5, rtol=0)
        torch.testing.assert_close(pred["pts3d_cam"][m], view["pts3d_cam"][m], atol=1e-5, rtol=0)
        torch.testing.assert_close(pred["depth_along_ray"][m], view["depth_along_ray"][m], atol=1e-5, rtol=0)
        torch.testing.assert_close(pred["ray_directions"], view["ray_directions_cam"], atol=1e-6, rtol=0)
        assert (pred["metric_scaling_factor"] == 1).all()
    # view 0 is the identity (the sample world)
    torch.testing.assert_close(pred_camera_pose(preds[0]), torch.eye(4).expand(2, 4, 4), atol=1e-6, rtol=0)


def test_dense_depth_fills_the_rest_and_sky_has_no_confidence(coop):
    preds = _oracle()(coop)
    for view, pred in zip(coop, preds):
        valid, dense = view["valid_mask"], view["dense_depthmap"][..., 0]
        fill = ~valid & (dense > 0)
        z = pred["pts3d_cam"][..., 2]
        torch.testing.assert_close(z[fill], dense[fill], atol=1e-5, rtol=0)
        sky = dense == 0
        assert (pred["conf"][sky] == 1).all() and not pred["non_ambiguous_mask"][sky].any()
        assert (pred["depth_along_ray"][sky] == 0).all()
        assert (pred["conf"][~sky] == ORACLE_CONF).all() and pred["non_ambiguous_mask"][~sky].all()


def test_without_dense_depth_only_valid_pixels_are_known():
    views = make_views("single", has_dense=False)
    for view, pred in zip(views, _oracle()(views)):
        assert torch.equal(pred["non_ambiguous_mask"], view["valid_mask"])
        assert (pred["conf"][~view["valid_mask"]] == 1).all()


def test_scale_multiplies_every_metric_distance(coop):
    base, scaled = _oracle()(coop), _oracle(scale=1.25)(coop)
    for b, s in zip(base, scaled):
        for key in ("pts3d", "pts3d_cam", "depth_along_ray", "cam_trans"):
            torch.testing.assert_close(s[key], 1.25 * b[key], atol=1e-5, rtol=1e-6)
        torch.testing.assert_close(s["metric_scaling_factor"], torch.full((2, 1), 1.25))
        torch.testing.assert_close(s["pts3d"] / 1.25, b["pts3d"], atol=1e-5, rtol=1e-6)  # up to scale: exact
        torch.testing.assert_close(s["cam_quats"], b["cam_quats"])
    # distances between cameras and between points are 1.25x
    d_base = (base[5]["cam_trans"] - base[2]["cam_trans"]).norm(dim=-1)
    d_scaled = (scaled[5]["cam_trans"] - scaled[2]["cam_trans"]).norm(dim=-1)
    torch.testing.assert_close(d_scaled, 1.25 * d_base)


def test_agent_offset_moves_cavs_along_their_forward_axis(coop):
    base, moved = _oracle()(coop), _oracle(agent_offset_m=2.5)(coop)
    for view, b, m in zip(coop, base, moved):
        is_cav = view["agent_index"] > 0
        forward = view["agent_pose"][:, :3, 0]
        shift = torch.where(is_cav[:, None], 2.5 * forward, torch.zeros_like(forward))
        torch.testing.assert_close(m["cam_trans"] - b["cam_trans"], shift, atol=1e-5, rtol=0)
        torch.testing.assert_close(m["pts3d"] - b["pts3d"], shift[:, None, None, :].expand_as(b["pts3d"]), atol=1e-4, rtol=0)
        torch.testing.assert_close(pred_camera_pose(m)[:, :3, :3], pred_camera_pose(b)[:, :3, :3], atol=1e-6, rtol=0)
        torch.testing.assert_close(m["pts3d_cam"], b["pts3d_cam"])
    assert any(bool((v["agent_index"] > 0).any()) for v in coop)


def test_agent_rotation_yaws_cavs_about_their_up_axis(coop):
    base, rot = _oracle()(coop), _oracle(agent_rot_deg=7.0)(coop)
    for view, b, r in zip(coop, base, rot):
        is_cav = view["agent_index"] > 0
        angle = geodesic_angle(pred_camera_pose(r)[:, :3, :3].double(), pred_camera_pose(b)[:, :3, :3].double())
        expected = torch.where(is_cav, math.radians(7.0), 0.0).double()
        torch.testing.assert_close(angle, expected, atol=1e-6, rtol=0)
        # in the agent's own (GT) frame the points turned by +7 deg about z: height and range unchanged
        A_inv = invert_pose(view["agent_pose"].double())
        p_b = torch.einsum("bij,bhwj->bhwi", A_inv[:, :3, :3], b["pts3d"].double()) + A_inv[:, None, None, :3, 3]
        p_r = torch.einsum("bij,bhwj->bhwi", A_inv[:, :3, :3], r["pts3d"].double()) + A_inv[:, None, None, :3, 3]
        torch.testing.assert_close(p_r[..., 2], p_b[..., 2], atol=1e-4, rtol=0)
        torch.testing.assert_close(p_r[..., :2].norm(dim=-1), p_b[..., :2].norm(dim=-1), atol=1e-4, rtol=0)
        yaw = torch.atan2(p_r[..., 1], p_r[..., 0]) - torch.atan2(p_b[..., 1], p_b[..., 0])
        yaw = torch.remainder(yaw + math.pi, 2 * math.pi) - math.pi
        known = (b["depth_along_ray"][..., 0] > 1) & is_cav[:, None, None]
        torch.testing.assert_close(yaw[known], torch.full_like(yaw[known], math.radians(7.0)), atol=1e-5, rtol=0)


def test_depth_noise_is_seeded_and_has_the_requested_std(coop):
    base = _oracle()(coop)
    noisy_a = _oracle(depth_noise_m=0.5, seed=3)(coop)
    noisy_b = _oracle(depth_noise_m=0.5, seed=3)(coop)
    noisy_c = _oracle(depth_noise_m=0.5, seed=4)(coop)
    diffs = []
    for b, a, a2, c in zip(base, noisy_a, noisy_b, noisy_c):
        assert torch.equal(a["pts3d"], a2["pts3d"])
        known = b["depth_along_ray"][..., 0] > 0
        assert not torch.equal(a["pts3d"], c["pts3d"])
        diffs.append(a["pts3d_cam"][..., 2][known] - b["pts3d_cam"][..., 2][known])
        assert (a["depth_along_ray"][~known] == 0).all()
    d = torch.cat(diffs)
    assert d.numel() > 5000
    assert abs(d.std().item() - 0.5) < 0.02 and abs(d.mean().item()) < 0.02


def test_knobs_from_the_composed_config(coop):
    cfg = compose("teacher_cache", ["data.root=/tmp/x", "model=oracle", "model.scale=1.25", "model.agent_offset_m=1.0"])
    preds = build_model(cfg.model)(coop)
    ref = oracle_predictions(coop, scale=1.25, agent_offset_m=1.0)
    torch.testing.assert_close(preds[4]["pts3d"], ref[4]["pts3d"])
    with pytest.raises(ConfigError, match="scale must be > 0"):
        _oracle(scale=0.0)


def test_oracle_runs_in_a_training_loop(coop):
    model = _oracle(scale=1.25)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model(coop)
    loss = sum(p["pts3d"].abs().mean() for p in before)
    loss.backward()
    opt.step()
    after = model(coop)
    torch.testing.assert_close(after[3]["pts3d"], before[3]["pts3d"].detach())
    assert [n for n, _ in model.named_parameters()] == ["anchor"]
