"""Consistency with shared poses (prior mode): agreement with the shared relative poses within their noise."""

import math

import pytest
import torch
from loss_scenes import make_pose, make_views, perfect_preds, random_rigid, rot_z
from test_loss_consistency import _agent_views, _world_move

from coopmap.errors import ShapeError
from coopmap.losses.config import ConsistencyConfig
from coopmap.losses.consistency import (
    CoopConsistencyLoss,
    pairwise_pose_consistency_loss,
    shared_prior_violations,
)

SHARED = dict(mode="prior", prior_dist_weight=0.0, prior_tilt_weight=0.0, prior_shared_t_weight=1.0,
              prior_shared_r_weight=1.0)


def _share(views, moves, sigma):
    """shared_agent_pose = agent_pose moved by ``moves[a]`` (in the agent's own frame); shared_pose_sigma
    ``sigma[a]`` = (metres, radians) per agent."""
    for v in views:
        a = int(v["agent_index"][0])
        A = v["agent_pose"]
        v["shared_agent_pose"] = A @ moves.get(a, torch.eye(4, dtype=A.dtype))
        v["shared_pose_sigma"] = torch.tensor(sigma[a], dtype=A.dtype).expand(A.shape[0], 2)
    return views


def test_shared_offset_beyond_its_noise_closed_form():
    """Agent 1 shared 2 m off along its own x, sigma_t = 0.5 m for the cooperators (the ego exact), k = 3:
    pair (0, 1) tolerates 1.5 m -> 0.5 m; pair (1, 2) tolerates 3 sqrt(0.5) = 2.12 m -> 0; pair (0, 2) -> 0.
    A perfect prediction pays 0.5 / 3 on average."""
    views = _share(make_views(n_agents=3, n_cams=2, B=2), {1: make_pose(torch.eye(3, dtype=torch.float64),
                                                                        (2.0, 0.0, 0.0))},
                   {0: (0.0, 0.0), 1: (0.5, 0.0), 2: (0.5, 0.0)})
    t, r, pairs = shared_prior_violations(views, perfect_preds(views), k=3.0)
    assert pairs.tolist() == [[0, 1], [0, 2], [1, 2]]
    torch.testing.assert_close(t, torch.tensor([[0.5, 0.0, 0.0]] * 2, dtype=t.dtype), atol=1e-9, rtol=0)
    torch.testing.assert_close(r, torch.zeros_like(r), atol=1e-7, rtol=0)
    loss, d = pairwise_pose_consistency_loss(views, perfect_preds(views), **SHARED)
    assert d["coop/prior_shared_t"].item() == pytest.approx(0.5 / 3, abs=1e-9)
    assert loss.item() == pytest.approx(0.5 / 3, abs=1e-7)


def test_rotation_and_its_lever_arm():
    """Agent 1 shared yawed by 0.05 rad with sigma_r = 0.01 rad (ego exact): pair (0, 1) rotation hinge
    0.05 - 3 * 0.01 = 0.02 rad; the ego's sigma_r = 0.02 rad widens the translation tolerance of pair (0, 1) by
    its distance: 3 * 0.02 * |t_01| swallows the translation error the yaw about agent 1's origin causes (none)."""
    views = _share(make_views(n_agents=2, n_cams=1), {1: make_pose(rot_z(0.05), (0.0, 0.0, 0.0))},
                   {0: (0.0, 0.0), 1: (0.0, 0.01)})
    t, r, _ = shared_prior_violations(views, perfect_preds(views))
    assert r[0, 0].item() == pytest.approx(0.02, abs=1e-9)
    assert t[0, 0].item() == pytest.approx(0.0, abs=1e-9)
    # a 1 m shift of agent 1 with the ego's rotation noise: tolerance 3 * sqrt((|t_01| * 0.02)^2)
    views = _share(make_views(n_agents=2, n_cams=1), {1: make_pose(torch.eye(3, dtype=torch.float64), (1.0, 0, 0))},
                   {0: (0.0, 0.02), 1: (0.0, 0.0)})
    dist = torch.linalg.vector_norm((torch.linalg.inv(views[0]["agent_pose"]) @ views[1]["agent_pose"])[0, :3, 3])
    t, _, _ = shared_prior_violations(views, perfect_preds(views))
    assert t[0, 0].item() == pytest.approx(max(0.0, 1.0 - 3 * 0.02 * dist.item()), abs=1e-7)


def test_perfect_sharing_is_the_plain_relative_pose_error():
    """sigma 0 and shared = GT: the prior equals the gt-mode pairwise errors (no robust penalty)."""
    views = _share(make_views(n_agents=3, n_cams=2, seed=2), {}, {0: (0, 0), 1: (0, 0), 2: (0, 0)})
    preds = _world_move(perfect_preds(views), _agent_views(views, 1), random_rigid(torch.Generator().manual_seed(3),
                                                                                   scale=1.0))
    _, gt = pairwise_pose_consistency_loss(views, preds)
    _, prior = pairwise_pose_consistency_loss(views, preds, **SHARED)
    assert prior["coop/prior_shared_t"].item() == pytest.approx(gt["coop/pose_t"].item(), abs=1e-9)
    assert prior["coop/prior_shared_r"].item() == pytest.approx(gt["coop/pose_r"].item(), abs=1e-9)
    assert gt["coop/pose_t"].item() > 0.1


def test_module_with_shared_prior_and_missing_keys():
    views = _share(make_views(n_agents=2, n_cams=2), {1: make_pose(rot_z(0.1), (1.0, 0.5, 0.0))},
                   {0: (0.0, 0.0), 1: (0.2, 0.01)})
    preds = perfect_preds(views, requires_grad=True)
    loss, d = CoopConsistencyLoss(ConsistencyConfig(**SHARED, box_weight=0.0))(views, preds)
    loss.backward()
    assert d["coop/prior_shared_t"].item() > 0 and d["coop/prior_shared_r"].item() > 0
    assert preds[2]["cam_trans"].grad.abs().sum() > 0
    off, d_off = CoopConsistencyLoss(ConsistencyConfig(mode="prior", box_weight=0.0))(views, perfect_preds(views))
    assert "coop/prior_shared_t" not in d_off and off.item() == pytest.approx(0.0, abs=1e-9)
    bare = [{k: v for k, v in view.items() if not k.startswith("shared_")} for view in views]
    with pytest.raises(ShapeError, match="shared_agent_pose"):
        CoopConsistencyLoss(ConsistencyConfig(**SHARED))(bare, perfect_preds(views))
    assert math.isfinite(loss.item())
