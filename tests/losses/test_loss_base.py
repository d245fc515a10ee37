import math

import pytest
import torch
from loss_scenes import make_pose, make_views, perfect_preds, random_rigid, rot_z

from coopmap.errors import ShapeError
from coopmap.geometry import pose_to_quat_trans
from coopmap.losses.base import BaseGeometryLoss, base_geometry_loss
from coopmap.losses.config import BaseLossConfig, BaseWeights

ONLY = {k: 0.0 for k in BaseWeights.__dataclass_fields__}


def avg_dis(preds, views) -> float:
    """Mean distance of the predicted points over the labelled pixels of all views (B = 1, pred view 0 = GT's)."""
    return torch.cat([p["pts3d"][v["valid_mask"]].norm(dim=-1) for p, v in zip(preds, views)]).mean().item()


def only(term: str) -> BaseWeights:
    return BaseWeights(**{**ONLY, term: 1.0})


@pytest.mark.parametrize("mask_aware", [False, True])
def test_zero_at_ground_truth_in_any_predicted_frame(mask_aware):
    views = make_views(n_agents=2, n_cams=2, B=2)
    G = random_rigid(torch.Generator().manual_seed(1))
    for preds in (perfect_preds(views), perfect_preds(views, G), perfect_preds(views, G, scale=1.0)):
        loss, details = base_geometry_loss(views, preds, mask_aware=mask_aware)
        assert loss.item() == pytest.approx(0.0, abs=1e-10)
        assert set(details) == {"base/pts3d", "base/depth", "base/rays", "base/pose_t", "base/pose_r",
                                "base/scale", "base/n_valid"}


def test_pts3d_closed_form_two_pixels():
    # one view, two labelled pixels on the optical axis at 2 m and 4 m: avg_dis = 3; the prediction moves the
    # second point sideways by 3 m: |p| = 5, pred avg_dis = 3.5.
    views = make_views(n_agents=1, n_cams=1, H=1, W=2, coverage=1.0)
    gt = torch.tensor([[[[0.0, 0.0, 2.0], [0.0, 0.0, 4.0]]]], dtype=torch.float64)
    views[0]["pts3d"], views[0]["depthmap"] = gt, gt[..., 2:]
    preds = perfect_preds(views)
    preds[0]["pts3d"] = torch.tensor([[[[0.0, 0.0, 2.0], [3.0, 0.0, 4.0]]]], dtype=torch.float64)
    loss, d = base_geometry_loss(views, preds, log_space=False, robust=False, weights=only("pts3d"))
    e1 = abs(2 / 3.5 - 2 / 3)
    e2 = math.hypot(3 / 3.5, 4 / 3.5 - 4 / 3)
    assert loss.item() == pytest.approx((e1 + e2) / 2, abs=1e-12)
    assert d["base/pts3d"].item() == pytest.approx((e1 + e2) / 2, abs=1e-12)


def test_mask_aware_ignores_unlabelled_pixels_naive_does_not():
    views = make_views(n_agents=1, n_cams=2, H=4, W=5, coverage=0.5)
    preds = perfect_preds(views)
    unl = ~views[1]["valid_mask"]
    moved = perfect_preds(views)
    moved[1]["pts3d"] = moved[1]["pts3d"] + 7.0 * unl[..., None]
    moved[1]["depth_along_ray"] = moved[1]["depth_along_ray"] + 7.0 * unl[..., None]
    w = BaseWeights(**{**ONLY, "pts3d": 1.0, "depth": 1.0})
    aware = [base_geometry_loss(views, p, mask_aware=True, weights=w)[0] for p in (preds, moved)]
    assert aware[0].item() == aware[1].item() == 0.0
    naive, d = base_geometry_loss(views, moved, mask_aware=False, log_space=False, robust=False,
                                  weights=only("depth"))
    # naive: the unlabelled pixels of view 1 count with target 0; depth residual there = 7 / pred avg_dis
    expected = (7.0 / avg_dis(moved, views)) * unl.sum().item() / unl.numel() / 2  # view 0 contributes 0
    assert naive.item() == pytest.approx(expected, rel=1e-10)


def test_scale_term_is_log_of_scale_error_and_reaches_only_the_scale():
    views = make_views(n_agents=2, n_cams=2)
    preds = perfect_preds(views, scale=1.5, requires_grad=True)
    loss, d = base_geometry_loss(views, preds, robust=False)
    assert d["base/scale"].item() == pytest.approx(math.log(1.5), abs=1e-12)
    for k in ("pts3d", "depth", "rays", "pose_t", "pose_r"):
        assert d[f"base/{k}"].item() == pytest.approx(0.0, abs=1e-10)
    scale_only, _ = base_geometry_loss(views, preds, robust=False, weights=only("scale"))
    scale_only.backward()
    assert all(p["pts3d"].grad is None or p["pts3d"].grad.abs().max() == 0 for p in preds)
    assert preds[0]["metric_scaling_factor"].grad.abs().sum() > 0


def test_pose_terms_closed_form():
    views = make_views(n_agents=1, n_cams=3)
    preds = perfect_preds(views)
    theta, shift = 0.2, torch.tensor([0.0, 0.0, 1.5], dtype=torch.float64)
    T = views[2]["camera_pose"][0] @ make_pose(rot_z(theta), (0, 0, 0))  # rotate camera 2 about its own z
    q, _ = pose_to_quat_trans(T)
    preds[2]["cam_quats"] = q[None]
    preds[1]["cam_trans"] = preds[1]["cam_trans"] + shift
    _, d = base_geometry_loss(views, preds, robust=False, weights=BaseWeights(**{**ONLY, "pose_t": 1, "pose_r": 1}))
    assert d["base/pose_r"].item() == pytest.approx(theta / 2, abs=1e-10)  # views 1 and 2
    assert d["base/pose_t"].item() == pytest.approx(1.5 / avg_dis(preds, views) / 2, abs=1e-10)


def test_empty_masks_are_finite():
    views = make_views(n_agents=1, n_cams=2, coverage=0.0)
    preds = perfect_preds(views, requires_grad=True)
    for p in preds:
        p["pts3d"].data += 1.0
    for mask_aware in (False, True):
        loss, d = base_geometry_loss(views, preds, mask_aware=mask_aware)
        loss.backward()
        assert torch.isfinite(loss) and d["base/n_valid"].item() == 0
        assert all(torch.isfinite(p["pts3d"].grad).all() for p in preds)


def _noisy(x, gen, positive=False):
    y = x + 0.05 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    return (y.abs() if positive else y).requires_grad_()


def test_gradcheck_float64():
    views = make_views(n_agents=2, n_cams=2, H=3, W=4, seed=3)
    base = perfect_preds(views, random_rigid(torch.Generator().manual_seed(2), scale=1.0))
    gen = torch.Generator().manual_seed(0)
    keys = ["pts3d", "depth_along_ray", "ray_directions", "cam_trans", "cam_quats"]
    inputs = [_noisy(base[v][k], gen) for v in range(len(views)) for k in keys]
    # every term but scale (its gradient deliberately reaches only the scale factor: checked below)
    weights = BaseWeights(scale=0.0)

    def fn(*xs):
        preds = [{**base[v], **dict(zip(keys, xs[v * len(keys):(v + 1) * len(keys)]))} for v in range(len(views))]
        return base_geometry_loss(views, preds, mask_aware=True, robust_c=0.5, weights=weights)[0]

    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True)
    scales = [_noisy(p["metric_scaling_factor"], gen, positive=True) for p in base]

    def scale_fn(*s):
        preds = [{**p, "metric_scaling_factor": x} for p, x in zip(base, s)]
        return base_geometry_loss(views, preds, robust_c=0.5, weights=only("scale"))[0]

    assert torch.autograd.gradcheck(scale_fn, scales)


def test_module_equals_function():
    views = make_views(n_agents=2, n_cams=2, seed=5)
    preds = perfect_preds(views, scale=1.3)
    preds[1]["pts3d"] = preds[1]["pts3d"] + 0.3
    cfg = BaseLossConfig(mask_aware=True, log_space=False, robust=True, robust_c=0.1)
    a = BaseGeometryLoss(cfg)(views, preds)
    b = base_geometry_loss(views, preds, mask_aware=True, log_space=False, robust=True, robust_c=0.1)
    assert a[0].item() == b[0].item() and a[1].keys() == b[1].keys()


def test_bad_inputs_raise_shape_errors_naming_the_key():
    views = make_views(n_agents=1, n_cams=2)
    preds = perfect_preds(views)
    del preds[1]["depth_along_ray"]
    with pytest.raises(ShapeError, match=r"preds\[1\] lacks key 'depth_along_ray'"):
        base_geometry_loss(views, preds)
    preds = perfect_preds(views)
    preds[1]["pts3d"] = preds[1]["pts3d"][:, :2]
    with pytest.raises(ShapeError, match="H = 2"):
        base_geometry_loss(views, preds)
    with pytest.raises(ShapeError, match="2 views but 1 prediction"):
        base_geometry_loss(views, perfect_preds(views)[:1])
