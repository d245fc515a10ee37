import pytest
import torch
from loss_scenes import make_views, perfect_preds, random_rigid

from coopmap.geometry import invert_pose, transform_points
from coopmap.losses.config import DepthLossConfig
from coopmap.losses.depth import DepthLoss, ego_heights, height_prior_loss, masked_depth_loss
from coopmap.losses.robust import robust_penalty


def _two_views_with_known_errors():
    """V = 2, 1 x 4 pixels: view 0 labels two pixels (errors 1 and 3 m), view 1 one pixel (error 4 m)."""
    views = make_views(n_agents=1, n_cams=2, H=1, W=4, coverage=0.0)
    gt = torch.tensor([[[10.0, 20.0, 0.0, 0.0]], [[0.0, 0.0, 5.0, 0.0]]], dtype=torch.float64)
    err = torch.tensor([[[1.0, -3.0, 0.0, 0.0]], [[0.0, 0.0, 4.0, 0.0]]], dtype=torch.float64)
    pred_z = torch.tensor([[[11.0, 17.0, 8.0, 2.0]], [[6.0, 1.0, 9.0, 0.5]]], dtype=torch.float64)
    assert torch.equal((pred_z - gt)[gt > 0], err[gt > 0])
    preds = perfect_preds(views)
    for v in range(2):
        views[v]["depthmap"] = gt[v][None, ..., None]
        views[v]["valid_mask"] = gt[v][None] > 0
        preds[v]["pts3d_cam"] = torch.zeros(1, 1, 4, 3, dtype=torch.float64)
        preds[v]["pts3d_cam"][..., 2] = pred_z[v]
    return views, preds, pred_z, gt


def test_mask_aware_depth_closed_form():
    views, preds, pred_z, gt = _two_views_with_known_errors()
    loss, d = masked_depth_loss(views, preds, mask_aware=True)
    assert loss.item() == pytest.approx(((1 + 3) / 2 + 4 / 1) / 2)  # per view, then averaged
    assert d["depth/l1"].item() == d["depth/main"].item() == loss.item()
    assert d["depth/n_valid"].item() == 3 and d["depth/empty_views"].item() == 0


def test_naive_depth_uses_every_pixel_with_target_zero():
    views, preds, pred_z, gt = _two_views_with_known_errors()
    loss, _ = masked_depth_loss(views, preds, mask_aware=False)
    assert loss.item() == pytest.approx(((1 + 3 + 8 + 2) / 4 + (6 + 1 + 4 + 0.5) / 4) / 2)


def test_robust_depth_closed_form():
    views, preds, _, _ = _two_views_with_known_errors()
    loss, d = masked_depth_loss(views, preds, robust=True, robust_alpha=1.0, robust_c=2.0)
    rho = lambda x: robust_penalty(torch.tensor(x, dtype=torch.float64), 1.0, 2.0).item()  # noqa: E731
    assert loss.item() == pytest.approx(((rho(1) + rho(3)) / 2 + rho(4)) / 2)
    assert d["depth/l1"].item() == pytest.approx(3.0)


def test_unlabelled_predictions_do_not_change_the_main_term():
    views = make_views(n_agents=2, n_cams=2, coverage=0.4, seed=2)
    preds = perfect_preds(views)
    preds[1]["pts3d_cam"] = preds[1]["pts3d_cam"] + 0.25
    before, _ = masked_depth_loss(views, preds, mask_aware=True)
    unl = ~views[1]["valid_mask"]
    preds[1]["pts3d_cam"] = preds[1]["pts3d_cam"] + 50.0 * unl[..., None]
    after, _ = masked_depth_loss(views, preds, mask_aware=True)
    naive_after, _ = masked_depth_loss(views, preds, mask_aware=False)
    assert after.item() == pytest.approx(before.item(), abs=1e-12)
    assert naive_after.item() > before.item() + 1.0


def test_no_label_gives_zero_counted_never_nan():
    views = make_views(n_agents=1, n_cams=2, B=2, coverage=0.0)
    preds = perfect_preds(views, requires_grad=True)
    loss, d = masked_depth_loss(views, preds, mask_aware=True)
    loss.backward()
    assert loss.item() == 0.0 and d["depth/n_valid"].item() == 0 and d["depth/empty_views"].item() == 4
    assert all(torch.isfinite(p["pts3d_cam"].grad).all() for p in preds)


def test_zero_at_ground_truth():
    views = make_views(n_agents=2, n_cams=2)
    for mask_aware in (False, True):
        assert masked_depth_loss(views, perfect_preds(views), mask_aware=mask_aware)[0].item() == 0.0
        assert height_prior_loss(views, perfect_preds(views))[0].item() == 0.0


def _preds_at_heights(views, heights):
    """Predictions whose unlabelled pixels all sit at the given ego heights (one per view), via the GT rig."""
    preds = perfect_preds(views)
    for i, (v, h) in enumerate(zip(views, heights)):
        T_cam_from_ego = invert_pose(v["T_ego_from_cam"])
        B, H, W, _ = v["pts3d_cam"].shape
        p_ego = torch.zeros(B, H * W, 3, dtype=torch.float64)
        p_ego[..., 0], p_ego[..., 2] = 8.0, h
        pts_cam = transform_points(T_cam_from_ego, p_ego).reshape(B, H, W, 3)
        keep = v["valid_mask"][..., None]
        preds[i]["pts3d_cam"] = torch.where(keep, v["pts3d_cam"], pts_cam)
    return preds


def test_height_prior_zero_below_z_max_and_linear_above():
    views = make_views(n_agents=1, n_cams=3, coverage=0.3)
    unl = [int((~v["valid_mask"]).sum()) for v in views]
    for heights, expected in (([1.0, 3.9, -2.0], 0.0), ([5.0, 6.5, 4.0], (unl[0] * 1.0 + unl[1] * 2.5) / sum(unl))):
        loss, d = height_prior_loss(views, _preds_at_heights(views, heights), z_max=4.0, frame="gt_rig")
        assert loss.item() == pytest.approx(expected, abs=1e-9)
        assert d["height/n_pixels"].item() == sum(unl)
    # slope: raising every point above z_max by dz raises the penalty by dz
    a = height_prior_loss(views, _preds_at_heights(views, [5.0, 5.0, 5.0]), frame="gt_rig")[0]
    b = height_prior_loss(views, _preds_at_heights(views, [5.7, 5.7, 5.7]), frame="gt_rig")[0]
    assert (b - a).item() == pytest.approx(0.7, abs=1e-9)


def test_height_prior_hinge_below_ground():
    views = make_views(n_agents=1, n_cams=2, coverage=0.3)
    preds = _preds_at_heights(views, [-1.5, -0.2])
    unl = [int((~v["valid_mask"]).sum()) for v in views]
    assert height_prior_loss(views, preds, frame="gt_rig")[0].item() == pytest.approx(0.0, abs=1e-9)
    loss, _ = height_prior_loss(views, preds, z_min=-0.5, frame="gt_rig")
    assert loss.item() == pytest.approx(unl[0] * 1.0 / sum(unl), abs=1e-9)


def test_height_frames_agree_on_consistent_predictions():
    views = make_views(n_agents=2, n_cams=2, coverage=0.3, seed=4)
    preds = perfect_preds(views, random_rigid(torch.Generator().manual_seed(7)))
    z_pred, z_rig = ego_heights(views, preds, "pred"), ego_heights(views, preds, "gt_rig")
    labelled = torch.stack([v["valid_mask"] for v in views], 1).flatten(2)
    torch.testing.assert_close(z_pred[labelled], z_rig[labelled], atol=1e-9, rtol=0)


def _sky_scene(z_max, d):
    """One view: labelled pixels at a far height (ignored), one sky pixel (no depth, ``non_ambiguous_mask`` False)
    at ``z_max + d`` in the ego frame, every other unlabelled pixel at 1 m. Returns views, preds, unlabelled count."""
    views = make_views(n_agents=1, n_cams=1, coverage=0.5, seed=3)
    v = views[0]
    heights = torch.full(v["valid_mask"].shape, 1.0, dtype=torch.float64)
    heights[v["valid_mask"]] = 50.0  # labelled: never in the prior, whatever their height
    unl = (~v["valid_mask"]).nonzero()
    b, i, j = unl[0].tolist()
    heights[b, i, j] = z_max + d
    v["non_ambiguous_mask"] = torch.ones_like(v["valid_mask"])
    v["non_ambiguous_mask"][b, i, j] = False  # the dense GT's "sky" mark must not exempt it
    preds = perfect_preds(views)
    p_ego = torch.zeros(*heights.shape, 3, dtype=torch.float64)
    p_ego[..., 0], p_ego[..., 2] = 8.0, heights
    B, H, W = heights.shape
    preds[0]["pts3d_cam"] = transform_points(invert_pose(v["T_ego_from_cam"]), p_ego.reshape(B, -1, 3)).reshape(B, H, W, 3)
    return views, preds, len(unl)


def test_height_prior_penalises_every_unlabelled_pixel_sky_included():
    views, preds, n_unl = _sky_scene(4.0, 2.5)
    cfg = DepthLossConfig(mask_aware=True, height_weight=0.3, height_frame="gt_rig")
    loss, d = DepthLoss(cfg)(views, preds)
    assert d["height/n_pixels"].item() == n_unl  # every pixel without depth, the sky pixel included
    assert loss.item() == pytest.approx(2.5 * 0.3 / n_unl, rel=1e-12)  # d * weight / count
    assert d["height/frac_above"].item() == pytest.approx(1 / n_unl, rel=1e-12)
    views[0]["non_ambiguous_mask"] = torch.zeros_like(views[0]["valid_mask"])  # all "sky": the same loss
    assert DepthLoss(cfg)(views, preds)[0].item() == pytest.approx(loss.item(), rel=1e-12)
    del views[0]["non_ambiguous_mask"]  # the key is not needed at all
    assert DepthLoss(cfg)(views, preds)[0].item() == pytest.approx(loss.item(), rel=1e-12)


def test_height_prior_skips_labelled_pixels():
    views = make_views(n_agents=1, n_cams=1, coverage=0.5)
    views[0]["valid_mask"] = torch.ones_like(views[0]["valid_mask"])
    views[0]["depthmap"] = views[0]["depthmap"].clamp_min(1.0)
    preds = _preds_at_heights(views, [10.0])
    preds[0]["pts3d_cam"] = preds[0]["pts3d_cam"] + torch.tensor([0.0, -20.0, 0.0], dtype=torch.float64)  # up
    loss, d = height_prior_loss(views, preds, frame="gt_rig")
    assert loss.item() == 0.0 and d["height/n_pixels"].item() == 0


@pytest.mark.parametrize("frame, B", [("pred", 1), ("gt_rig", 1), ("pred", 2), ("gt_rig", 2)])
def test_depth_and_height_gradcheck_float64(frame, B):
    views = make_views(n_agents=1, n_cams=2, B=B, H=3, W=4, coverage=0.5, seed=1)
    base = _preds_at_heights(views, [4.5, 6.0])
    gen = torch.Generator().manual_seed(0)
    keys = ["pts3d", "pts3d_cam", "cam_quats", "cam_trans"]
    xs = [(base[v][k] + 0.05 * torch.randn(base[v][k].shape, generator=gen, dtype=torch.float64)).requires_grad_()
          for v in range(2) for k in keys]
    if frame == "pred":
        for i in (0, 4):  # pred frame: put the unlabelled points of pts3d high above the ego too
            xs[i].data[..., 1] -= 6.0

    def fn(*x):
        preds = [{**base[v], **dict(zip(keys, x[4 * v:4 * v + 4]))} for v in range(2)]
        return (masked_depth_loss(views, preds, robust=True)[0]
                + height_prior_loss(views, preds, z_min=-1.0, frame=frame)[0])

    assert fn(*xs).item() > 0
    assert torch.autograd.gradcheck(fn, xs, fast_mode=True)


def test_depth_loss_module_is_the_weighted_sum():
    views = make_views(n_agents=1, n_cams=2, coverage=0.4)
    preds = _preds_at_heights(views, [5.0, 7.0])
    preds[0]["pts3d_cam"] = preds[0]["pts3d_cam"] * 1.1
    cfg = DepthLossConfig(mask_aware=True, depth_weight=0.7, height_weight=0.2, height_frame="gt_rig")
    loss, d = DepthLoss(cfg)(views, preds)
    main = masked_depth_loss(views, preds, mask_aware=True)[0]
    height = height_prior_loss(views, preds, frame="gt_rig")[0]
    assert loss.item() == pytest.approx(0.7 * main.item() + 0.2 * height.item(), rel=1e-12)
    assert {"depth/main", "depth/l1", "depth/n_valid", "depth/empty_views", "height/penalty"} <= set(d)
    assert DepthLoss(DepthLossConfig())(views, preds)[1] == {}  # both weights 0: nothing computed
