import math

import pytest
import torch
from loss_scenes import make_pose, make_views, perfect_preds, random_rigid, rot_x, rot_z

from coopmap.errors import ShapeError
from coopmap.geometry import first_box_map, pose_from_quat_trans, pose_to_quat_trans, transform_points
from coopmap.losses.boxes import box_consistency_loss, distance_outside_box, first_box_containing
from coopmap.losses.config import ConsistencyConfig
from coopmap.losses.consistency import (
    CoopConsistencyLoss,
    PairwisePoseConsistencyLoss,
    pairwise_pose_consistency_loss,
    pairwise_pose_errors,
    rig_consistency_loss,
)


def _world_move(preds, views_idx, G):
    """Left-multiply the predicted poses (and points) of the given views by G (a move in the predicted world)."""
    out = [dict(p) for p in preds]
    for v in views_idx:
        T = G @ pose_from_quat_trans(out[v]["cam_quats"], out[v]["cam_trans"])
        q, t = pose_to_quat_trans(T)
        pts = transform_points(G, out[v]["pts3d"].flatten(1, 2)).reshape(out[v]["pts3d"].shape)
        out[v] = {**out[v], "cam_quats": q, "cam_trans": t, "pts3d": pts}
    return out


def _agent_views(views, a):
    return [v for v, d in enumerate(views) if int(d["agent_index"][0]) == a]


def test_two_metre_offset_on_one_agent_closed_form():
    views = make_views(n_agents=4, n_cams=2, B=2)
    shift = make_pose(torch.eye(3, dtype=torch.float64), (2.0, 0.0, 0.0))  # 2 m in the predicted world
    preds = _world_move(perfect_preds(views), _agent_views(views, 2), shift)
    t_err, r_err, pairs = pairwise_pose_errors(views, preds)
    involved = (pairs == 2).any(-1)
    assert pairs.shape == (6, 2)
    torch.testing.assert_close(t_err, (involved.to(t_err.dtype) * 2.0).expand(2, 6), atol=1e-9, rtol=0)
    torch.testing.assert_close(r_err, torch.zeros_like(r_err), atol=1e-7, rtol=0)
    loss, d = pairwise_pose_consistency_loss(views, preds)
    assert d["coop/pose_t"].item() == pytest.approx(2.0 * 3 / 6, abs=1e-9)
    assert d["coop/n_pairs"].item() == 6


def test_rotation_of_one_agent_gives_its_angle():
    views = make_views(n_agents=3, n_cams=1)
    agent1 = _agent_views(views, 1)[0]
    T = views[agent1]["agent_pose"][0]
    G = T @ make_pose(rot_z(0.3), (0, 0, 0)) @ torch.linalg.inv(T)  # turn agent 1 about its own vertical
    t_err, r_err, pairs = pairwise_pose_errors(views, _world_move(perfect_preds(views), [agent1], G))
    expected = (pairs == 1).any(-1).to(r_err.dtype) * 0.3
    torch.testing.assert_close(r_err[0], expected, atol=1e-9, rtol=0)


def test_zero_at_gt_and_invariant_to_a_common_rigid_transform():
    views = make_views(n_agents=3, n_cams=2, B=2, seed=1)
    preds = perfect_preds(views)
    assert pairwise_pose_consistency_loss(views, preds)[0].item() == pytest.approx(0.0, abs=1e-10)
    noisy = _world_move(preds, _agent_views(views, 1), random_rigid(torch.Generator().manual_seed(5), scale=1.0))
    a = pairwise_pose_consistency_loss(views, noisy)[0]
    G = random_rigid(torch.Generator().manual_seed(6), scale=20.0)
    b = pairwise_pose_consistency_loss(views, _world_move(noisy, range(len(views)), G))[0]
    assert a.item() > 0.1 and b.item() == pytest.approx(a.item(), abs=1e-9)


def test_single_agent_is_zero_and_reported():
    views = make_views(n_agents=1, n_cams=4)
    preds = perfect_preds(views, requires_grad=True)
    loss, d = pairwise_pose_consistency_loss(views, preds)
    assert loss.item() == 0.0 and d["coop/n_pairs"].item() == 0
    full, fd = CoopConsistencyLoss(ConsistencyConfig())(views, preds)
    full.backward()
    assert torch.isfinite(full) and fd["coop/n_agents"].item() == 1 and fd["coop/n_pairs"].item() == 0


def test_prior_mode_hinges():
    views = make_views(n_agents=2, n_cams=1)
    far = views[1]["agent_pose"][0]
    # agent 1 seen 80 m away from the ego along the ego's x axis, tilted by 15 degrees of roll
    target = make_pose(rot_x(math.radians(15.0)), (80.0, 0.0, 0.0))
    A0 = views[0]["agent_pose"][0]
    G = A0 @ target @ torch.linalg.inv(torch.linalg.inv(A0) @ far) @ torch.linalg.inv(A0)
    preds = _world_move(perfect_preds(views), [1], G)
    loss, d = pairwise_pose_consistency_loss(views, preds, mode="prior", max_dist=70.0, max_tilt_deg=10.0)
    assert d["coop/prior_dist"].item() == pytest.approx(10.0, abs=1e-9)
    assert d["coop/prior_tilt"].item() == pytest.approx(math.radians(5.0), abs=1e-9)
    assert loss.item() == pytest.approx(10.0 + math.radians(5.0), abs=1e-9)
    ok, _ = pairwise_pose_consistency_loss(views, perfect_preds(views), mode="prior", max_dist=100.0)
    assert ok.item() == 0.0


def test_rig_consistency_closed_form():
    views = make_views(n_agents=2, n_cams=3)
    preds = perfect_preds(views)
    assert rig_consistency_loss(views, preds)[0].item() == pytest.approx(0.0, abs=1e-10)
    shift = make_pose(torch.eye(3, dtype=torch.float64), (0.0, 0.5, 0.0))
    loss, d = rig_consistency_loss(views, _world_move(preds, [4], shift))  # agent 1's camera 1
    assert d["coop/rig_t"].item() == pytest.approx(0.5 / 4, abs=1e-9)  # 4 non-reference cameras
    assert d["coop/rig_r"].item() == pytest.approx(0.0, abs=1e-7)


def test_box_membership_and_distance_closed_form():
    T = make_pose(rot_z(math.pi / 2), (10.0, 0.0, 0.0))
    half = torch.tensor([[2.0, 1.0, 0.5]], dtype=torch.float64)
    pts = torch.tensor([[10.0, 1.5, 0.0], [10.0, 2.5, 0.0], [30.0, 0.0, 0.0]], dtype=torch.float64)
    k = first_box_containing(pts, torch.linalg.inv(T)[None], half)
    assert k.tolist() == [0, -1, -1]
    p_box = torch.tensor([[3.0, 0.0, 0.0], [2.5, 2.0, 0.0], [0.0, 0.0, 0.2]], dtype=torch.float64)
    torch.testing.assert_close(distance_outside_box(p_box, half.expand(3, 3)),
                               torch.tensor([1.0, math.hypot(0.5, 1.0), 0.0], dtype=torch.float64))


def test_box_consistency_closed_form():
    views = make_views(n_agents=2, n_cams=2, n_boxes=3, seed=2)
    preds = perfect_preds(views, random_rigid(torch.Generator().manual_seed(3)))
    loss, d = box_consistency_loss(views, preds)
    assert loss.item() == 0.0 and d["coop/box_pixels"].item() > 0
    # lift every predicted point by `shift` along box 0's up axis (poses unchanged): a box-0 pixel at box height
    # p_z ends (p_z + shift - e_z) above the box when positive, else still inside
    boxes_T = torch.linalg.inv(views[0]["boxes_pose"][0])
    shift = 1.0
    world_up = views[0]["boxes_pose"][0, 0] @ make_pose(torch.eye(3, dtype=torch.float64), (0, 0, shift)) @ boxes_T[0]
    F = pose_from_quat_trans(preds[0]["cam_quats"][0], preds[0]["cam_trans"][0]) @ torch.linalg.inv(
        views[0]["camera_pose"][0])  # predicted world <- GT world
    moved = [{**p, "pts3d": transform_points(F @ world_up, v["pts3d"].flatten(1, 2)).reshape(v["pts3d"].shape)}
             for p, v in zip(preds, views)]
    for v in views:
        v["boxes_count"] = torch.tensor([1])  # only box 0
    gt = torch.cat([v["pts3d"][0][v["valid_mask"][0]] for v in views])
    p_box = transform_points(boxes_T[0], gt)
    inside = (p_box.abs() <= views[0]["boxes_half_extent"][0, 0]).all(-1)
    expected = (p_box[inside, 2] + shift - 0.8).clamp_min(0)
    loss, d = box_consistency_loss(views, moved)
    assert d["coop/box_pixels"].item() == int(inside.sum()) > 0
    assert loss.item() == pytest.approx(expected.mean().item(), abs=1e-9) and loss.item() > 0


def test_box_loss_with_the_precomputed_box_index_equals_the_computed_one():
    views = make_views(n_agents=2, n_cams=2, n_boxes=3, seed=4)
    preds = [{**p, "pts3d": p["pts3d"] + 2.0 * torch.randn(p["pts3d"].shape, generator=torch.Generator().manual_seed(v),
                                                           dtype=p["pts3d"].dtype)}
             for v, p in enumerate(perfect_preds(views, random_rigid(torch.Generator().manual_seed(5))))]
    boxes_T = torch.linalg.inv(views[0]["boxes_pose"][0])
    labelled = [v["valid_mask"] & (v["depthmap"][..., 0] > 0) for v in views]
    with_index = [{**v, "box_index": first_box_map(v["pts3d"], m, boxes_T, v["boxes_half_extent"][0])}
                  for v, m in zip(views, labelled)]
    computed, d1 = box_consistency_loss(views, preds)
    precomputed, d2 = box_consistency_loss(with_index, preds)
    assert d1["coop/box_pixels"].item() > 0 and computed.item() > 0
    assert d2["coop/box_pixels"].item() == d1["coop/box_pixels"].item()
    torch.testing.assert_close(precomputed, computed, rtol=0, atol=0)
    # the key is what the loss reads: marking no pixel leaves no box pixel
    none = [{**v, "box_index": torch.full_like(v["box_index"], -1)} for v in with_index]
    assert box_consistency_loss(none, preds)[1]["coop/box_pixels"].item() == 0


def test_agent_layout_must_match_across_the_batch():
    views = make_views(n_agents=2, n_cams=1, B=2)
    views[1]["agent_index"] = torch.tensor([1, 0])
    with pytest.raises(ShapeError, match="agent_index"):
        pairwise_pose_errors(views, perfect_preds(views))


@pytest.mark.parametrize("mode", ["gt", "prior"])
def test_gradcheck_float64_pairwise_rig_box(mode):
    views = make_views(n_agents=3, n_cams=2, H=2, W=3, coverage=0.7, n_boxes=3, seed=4)
    base = perfect_preds(views, random_rigid(torch.Generator().manual_seed(1), scale=1.0))
    gen = torch.Generator().manual_seed(2)
    keys = ["cam_quats", "cam_trans", "pts3d"]
    xs = [(base[v][k] + 0.3 * torch.randn(base[v][k].shape, generator=gen, dtype=torch.float64)).requires_grad_()
          for v in range(len(views)) for k in keys]
    cfg = ConsistencyConfig(mode=mode, robust=True, robust_c=0.5, max_dist=10.0, max_tilt_deg=1.0)

    def fn(*x):
        preds = [dict(zip(keys, x[3 * v:3 * v + 3])) for v in range(len(views))]
        return CoopConsistencyLoss(cfg)(views, preds)[0]

    assert fn(*xs).item() > 0
    assert torch.autograd.gradcheck(fn, xs, fast_mode=True)


def test_modules_equal_functions_and_weights_apply():
    views = make_views(n_agents=3, n_cams=2, seed=7)
    preds = _world_move(perfect_preds(views), [2, 3], make_pose(rot_z(0.1), (1.0, 0.0, 0.0)))
    cfg = ConsistencyConfig(pose_t_weight=2.0, pose_r_weight=3.0, rig_t_weight=0.5, rig_r_weight=0.0, box_weight=0.0)
    pair, pd = pairwise_pose_consistency_loss(views, preds, pose_t_weight=2.0, pose_r_weight=3.0)
    assert PairwisePoseConsistencyLoss(cfg)(views, preds)[0].item() == pytest.approx(pair.item())
    assert pair.item() == pytest.approx(2 * pd["coop/pose_t"].item() + 3 * pd["coop/pose_r"].item())
    rig, rd = rig_consistency_loss(views, preds)
    total, d = CoopConsistencyLoss(cfg)(views, preds)
    assert total.item() == pytest.approx(pair.item() + 0.5 * rd["coop/rig_t"].item())
    assert "coop/box" not in d and {"coop/pose_t", "coop/pose_r", "coop/rig_t", "coop/n_pairs"} <= set(d)


def test_prior_mode_module_combines_the_pair_hinges_and_the_rig_terms():
    """Prior mode with rig terms on: one batched link computation gives the same numbers as the two functions."""
    views = make_views(n_agents=3, n_cams=2, seed=8)
    G = make_pose(rot_z(0.2), (0.0, 0.7, 0.0))
    preds = _world_move(perfect_preds(views), [3], G)  # agent 1's second camera
    cfg = ConsistencyConfig(mode="prior", prior_dist_weight=2.0, prior_tilt_weight=1.0, max_dist=5.0,
                            rig_t_weight=0.5, rig_r_weight=4.0, box_weight=0.0)
    pair, pd = pairwise_pose_consistency_loss(views, preds, mode="prior", prior_dist_weight=2.0, max_dist=5.0)
    rig, rd = rig_consistency_loss(views, preds, t_weight=0.5, r_weight=4.0)
    total, d = CoopConsistencyLoss(cfg)(views, preds)
    assert pd["coop/prior_dist"].item() > 0 and rd["coop/rig_t"].item() > 0 and rd["coop/rig_r"].item() > 0
    for key in ("coop/prior_dist", "coop/prior_tilt", "coop/n_pairs"):
        assert d[key].item() == pytest.approx(pd[key].item(), abs=1e-12), key
    for key in ("coop/rig_t", "coop/rig_r"):
        assert d[key].item() == pytest.approx(rd[key].item(), abs=1e-12), key
    A = views[3]["agent_pose"][0]  # the vehicle pose view 3 implied before the move (predictions were perfect)
    moved = torch.linalg.vector_norm((G @ A)[:3, 3] - A[:3, 3]).item()
    assert rd["coop/rig_t"].item() == pytest.approx(moved / 3, abs=1e-9)  # 3 non-reference cameras, one moved
    assert rd["coop/rig_r"].item() == pytest.approx(0.2 / 3, abs=1e-9)
    assert total.item() == pytest.approx(pair.item() + rig.item(), abs=1e-12)


def test_no_boxes_gives_zero_box_term():
    views = make_views(n_agents=2, n_cams=1, n_boxes=0)
    for v in views:
        v["boxes_count"] = torch.zeros_like(v["boxes_count"])
    loss, d = box_consistency_loss(views, perfect_preds(views, scale=2.0))
    assert loss.item() == 0.0 and d["coop/box_pixels"].item() == 0
