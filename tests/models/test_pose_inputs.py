"""Pose inputs (MapAnything's camera_pose_quats / camera_pose_trans from the shared poses): tiny and the adapter."""

import math

import numpy as np
import pytest
import torch
from fake_views import make_views, noisy_shared_poses

from coopmap.errors import ConfigError
from coopmap.geometry import invert_pose, pose_from_quat_trans, quat_xyzw_to_rotmat
from coopmap.metrics.pose import agent_pose_refinement
from coopmap.models.config import ModelConfig
from coopmap.models.contract import check_outputs, pred_camera_pose
from coopmap.models.factory import build_model
from coopmap.models.mapanything import MapAnythingAdapter, views_to_mapanything_inputs
from coopmap.models.pose_inputs import (
    deterministic_geometric_config,
    normalize_translations,
    relative_to_view0,
    wants_pose_inputs,
)

SMALL = dict(name="tiny", patch_size=14, embed_dim=32, depth=2, num_heads=2)
POSES = ["camera_pose_quats", "camera_pose_trans", "is_metric_scale"]


def _model(**kw):
    torch.manual_seed(0)
    return build_model(ModelConfig(**{**SMALL, **kw}))


def _offset(dx, dy, yaw_deg):
    """A rigid move of an agent in the view-0 frame (OpenCV axes: y down, so yaw is about -y)."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    M = np.eye(4)
    M[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    M[:3, 3] = (dx, 0.0, dy)
    return M


def _errors(views, preds):
    cols = lambda key: torch.stack([v[key][0] for v in views])  # noqa: E731
    pred = torch.stack([pred_camera_pose(p)[0] for p in preds]).detach()
    return agent_pose_refinement(pred, cols("shared_camera_pose"), cols("camera_pose"), cols("T_agent_from_cam"),
                                 cols("agent_index"), cols("camera_index"))


def test_default_tiny_has_no_pose_input_modules():
    """Default behaviour and checkpoints unchanged: no new parameter without pose inputs."""
    names = set(_model().state_dict())
    assert not any(n.startswith(("cam_rot", "cam_trans", "fusion_norm")) for n in names)
    with_poses = set(_model(geometric_inputs=POSES).state_dict())
    assert names < with_poses
    assert {n.split(".")[0] for n in with_poses - names} == {"cam_rot_encoder", "cam_trans_encoder",
                                                             "cam_trans_scale_encoder", "fusion_norm"}


def test_a_new_model_passes_the_inputs_through_exactly():
    """The pose head's weights start at 0, so the correction is the identity: outputs = the shared inputs (relative
    to view 0), the input agent error equals the output error and the refinement is 0."""
    views = noisy_shared_poses(make_views("coop", n_agents=3), {1: _offset(0.7, -0.4, 1.5), 2: _offset(0, 1.0, -2)})
    model = _model(geometric_inputs=POSES)
    assert model.pose_out.weight.abs().max() == 0
    with torch.no_grad():
        preds = model(views)
    check_outputs(views, preds)
    for view, pred in zip(views, preds):
        torch.testing.assert_close(pred_camera_pose(pred), view["shared_camera_pose"], atol=1e-5, rtol=0)
    e = _errors(views, preds)
    assert e["input_agent_pose_abs_t"] > 0.5 and e["input_agent_pose_abs_r"] > 1.0
    assert e["agent_refine_t"] == pytest.approx(0.0, abs=1e-5)
    assert e["agent_refine_r"] == pytest.approx(0.0, abs=1e-3)


def test_pose_inputs_reach_the_tokens():
    """The encoded poses are added to the tokens: other shared poses change the dense outputs."""
    views = make_views("coop", n_agents=2)
    model = _model(geometric_inputs=POSES).eval()
    with torch.no_grad():
        a = model(views)
        b = model(noisy_shared_poses(views, {1: _offset(3.0, 0.0, 10.0)}))
    assert not torch.allclose(a[0]["depth_along_ray"], b[0]["depth_along_ray"], atol=1e-5)


def test_every_parameter_gets_a_gradient_with_pose_inputs():
    model = _model(geometric_inputs=POSES)
    preds = model(make_views("coop", batch=2))
    loss = sum(p["pts3d"].abs().mean() + p["cam_trans"].abs().mean() + p["conf"].mean() for p in preds)
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()] == []


def test_bad_pose_input_configs_and_views():
    with pytest.raises(ConfigError, match="without its pair"):
        wants_pose_inputs(["camera_pose_quats"])
    with pytest.raises(ConfigError, match="tiny takes only"):
        _model(geometric_inputs=["ray_directions_cam"])
    views = [{k: v for k, v in view.items() if not k.startswith("shared_")} for view in make_views("single")]
    with pytest.raises(ConfigError, match="never taken from the GT"):
        _model(geometric_inputs=POSES)(views)


def test_relative_to_view0_and_translation_normalisation_in_closed_form():
    torch.manual_seed(1)
    q = torch.nn.functional.normalize(torch.randn(5, 2, 4, dtype=torch.float64), dim=-1)
    t = torch.randn(5, 2, 3, dtype=torch.float64) * 10
    qr, tr = relative_to_view0(q, t)
    T = pose_from_quat_trans(q, t)
    torch.testing.assert_close(pose_from_quat_trans(qr, tr), invert_pose(T[:1]) @ T)
    trans = torch.tensor([[[0.0, 0, 0]], [[3.0, 4, 0]], [[0.0, 0, 10]]])  # norms 0, 5, 10: mean of non-zero 7.5
    scaled, f = normalize_translations(trans)
    torch.testing.assert_close(f, torch.tensor([7.5]))
    torch.testing.assert_close(scaled, trans / 7.5)


def test_mapanything_gets_the_shared_poses_under_its_own_keys():
    """Spec section 1 / their forward: camera_pose_quats (B, 4) XYZW and camera_pose_trans (B, 3), cam2world in
    one world (ours: view 0); they are the shared poses, never the GT."""
    views = noisy_shared_poses(make_views("coop", batch=2), {1: _offset(2.0, 1.0, 5.0)})
    inputs = views_to_mapanything_inputs(views, geometric_inputs=POSES)
    for view, entry in zip(views, inputs):
        assert entry["camera_pose_quats"].shape == (2, 4) and entry["camera_pose_trans"].shape == (2, 3)
        assert entry["camera_pose_quats"] is view["shared_camera_pose_quats"]
        R = quat_xyzw_to_rotmat(entry["camera_pose_quats"].double())  # XYZW order
        torch.testing.assert_close(R, view["shared_camera_pose"][:, :3, :3].double(), atol=1e-6, rtol=0)
        torch.testing.assert_close(entry["camera_pose_trans"], view["shared_camera_pose_trans"])
    moved = views[4]  # agent 1: its input differs from its GT
    assert (inputs[4]["camera_pose_trans"] - moved["camera_pose_trans"]).norm(dim=-1).min() > 1.0


def test_adapter_makes_the_geometric_inputs_deterministic():
    """Like their infer(): the asked inputs every sample, nothing else (their forward draws per sample)."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Linear(1, 1)
            self.encoder.data_norm_type = "dinov2"
            self.geometric_input_config = {"overall_prob": 0.9, "dropout_prob": 0.05, "cam_prob": 0.5,
                                           "ray_dirs_prob": 0.5, "pose_scale_norm_all_prob": 0.05}

    net = Net()
    MapAnythingAdapter(net, POSES)
    assert net.geometric_input_config == deterministic_geometric_config(POSES)
    assert net.geometric_input_config["cam_prob"] == 1.0 and net.geometric_input_config["ray_dirs_prob"] == 0.0
    assert net.geometric_input_config["pose_scale_norm_all_prob"] == 0.0  # metric: the scale is an input
    net2 = Net()
    MapAnythingAdapter(net2, ())  # images only: their config untouched
    assert net2.geometric_input_config["cam_prob"] == 0.5


@pytest.mark.parametrize("mode", ["gt", "prior"])
def test_consistency_trains_the_pose_input_path(mode):
    """The pairwise term (gt: the yaml's relative poses; prior: the shared ones within their noise) and the box
    term backpropagate through a tiny model with noisy pose inputs into its pose encoders."""
    from coopmap.losses.config import ConsistencyConfig
    from coopmap.losses.consistency import CoopConsistencyLoss

    views = noisy_shared_poses(make_views("coop", n_agents=3), {1: _offset(0.5, 0.2, 0.5), 2: _offset(-0.3, 0, -1)})
    for v in views:
        v["shared_pose_sigma"] = torch.tensor([[0.7, 0.01]]) * (v["agent_index"][:, None] > 0)
    model = _model(geometric_inputs=POSES)
    cfg = ConsistencyConfig(mode=mode, prior_shared_t_weight=1.0, prior_shared_r_weight=1.0)
    loss, d = CoopConsistencyLoss(cfg)(views, model(views))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0 and "coop/box" in " ".join(d)
    assert model.cam_trans_encoder[0].weight.grad.abs().sum() > 0
    assert ("coop/prior_shared_t" in d) == (mode == "prior")
