import math

import pytest
import torch
from loss_scenes import add_teacher, make_pose, make_views, perfect_preds, random_rigid, rot_z

from coopmap.errors import ConfigError
from coopmap.geometry import pose_from_quat_trans, pose_to_quat_trans
from coopmap.losses.config import DistillConfig
from coopmap.losses.distill import TEACHER_KEYS, ScaleDistillLoss, scale_distill_loss
from coopmap.losses.robust import robust_penalty


def _scene(n_agents=2, n_cams=2, seed=0):
    views = make_views(n_agents=n_agents, n_cams=n_cams, seed=seed)
    teacher = perfect_preds(views, random_rigid(torch.Generator().manual_seed(seed + 10)), scale=1.2)
    return add_teacher(views, teacher), teacher


def _moved(preds, v, G_local):
    """Right-multiply view v's predicted pose by G_local (a change of that camera only)."""
    T = pose_from_quat_trans(preds[v]["cam_quats"], preds[v]["cam_trans"]) @ G_local
    q, t = pose_to_quat_trans(T)
    preds[v] = {**preds[v], "cam_quats": q, "cam_trans": t}


def test_teacher_key_names_are_the_contract():
    assert TEACHER_KEYS == {"teacher_cam_quats": ("B", 4), "teacher_cam_trans": ("B", 3),
                            "teacher_scene_scale": ("B", 1)}


def _metric_scaled(preds, r):
    """The same predictions with every metric output r times larger (s unchanged: the up-to-scale part grows)."""
    keys = ("pts3d", "pts3d_cam", "depth_along_ray", "cam_trans")
    return [{**p, **{k: p[k] * r for k in keys}} for p in preds]


def _split_moved(preds, k):
    """The same metric output with s multiplied by k (so the up-to-scale output = metric / s shrinks by k)."""
    return [{**p, "metric_scaling_factor": p["metric_scaling_factor"] * k} for p in preds]


def test_same_metric_output_with_another_split_of_the_scale_gives_zero():
    views, teacher = _scene(n_agents=2, n_cams=2, seed=1)
    for k in (0.02, 1.6, 63.0):
        loss, d = scale_distill_loss(views, _split_moved(teacher, k))
        assert d["distill/scale"].item() == pytest.approx(0.0, abs=1e-12)
        assert loss.item() == pytest.approx(0.0, abs=1e-12)
        assert d["distill/s_abs_log"].item() == pytest.approx(abs(math.log(k)), rel=1e-12)  # the split differs


@pytest.mark.parametrize("r", [0.5, 1.3, 4.0])
def test_known_metric_ratio_gives_abs_log_r(r):
    views, teacher = _scene(n_agents=2, n_cams=2, seed=2)
    student = _split_moved(_metric_scaled(teacher, r), 1 / r)  # s also moved: only the metric ratio counts
    # plain penalty: |log r| / tau; scale only (the relative rotations are unchanged, translations scale by r)
    loss, d = scale_distill_loss(views, student, robust=False, tau=0.5, trans_weight=0.0, rot_weight=0.0)
    assert d["distill/scale_abs_log"].item() == pytest.approx(abs(math.log(r)), rel=1e-12)
    assert loss.item() == pytest.approx(abs(math.log(r)) / 0.5, rel=1e-12)
    # robust: rho(log r / tau) with the configured shape and scale
    loss, d = scale_distill_loss(views, student, tau=0.5, robust_alpha=1.0, robust_c=2.0, trans_weight=0.0,
                                 rot_weight=0.0)
    rho = robust_penalty(torch.tensor(math.log(r) / 0.5, dtype=torch.float64), 1.0, 2.0).item()
    assert loss.item() == pytest.approx(rho, rel=1e-12)


def test_scene_scale_is_over_the_labelled_pixels_of_the_selected_views():
    views, teacher = _scene(n_agents=2, n_cams=2, seed=4)
    student = [dict(p) for p in teacher]
    unl = ~views[1]["valid_mask"][..., None]
    student[1]["pts3d_cam"] = torch.where(unl, 1e3 * student[1]["pts3d_cam"] + 5.0, student[1]["pts3d_cam"])
    assert scale_distill_loss(views, student)[0].item() == pytest.approx(0.0, abs=1e-12)  # unlabelled: ignored
    # a CAV view's depths 2x: with views=ego the scale term does not see it; with all it sees the pooled ratio
    student[2] = _metric_scaled([student[2]], 2.0)[0]
    student[2]["cam_trans"] = teacher[2]["cam_trans"]
    ego = scale_distill_loss(views, student, which_views="ego", robust=False)[1]
    assert ego["distill/scale"].item() == pytest.approx(0.0, abs=1e-12)
    lab = [(v["depthmap"][..., 0] > 0) & v["valid_mask"] for v in views]
    dist = [t["pts3d_cam"].norm(dim=-1)[m].sum().item() for t, m in zip(teacher, lab)]
    pooled = (sum(dist) + dist[2]) / sum(dist)  # view 2's distances counted twice
    d = scale_distill_loss(views, student, which_views="all", robust=False)[1]
    assert d["distill/scale"].item() == pytest.approx(math.log(pooled), rel=1e-12)


def test_zero_when_student_equals_teacher_with_finite_gradients():
    views, teacher = _scene()
    student = [{k: x.detach().clone().requires_grad_() for k, x in p.items()} for p in teacher]
    loss, d = scale_distill_loss(views, student)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    assert all(torch.isfinite(p["cam_quats"].grad).all() for p in student)
    assert {"distill/scale", "distill/trans", "distill/rot", "distill/n_views"} <= set(d)


def test_closed_form_scale_translation_rotation():
    views, teacher = _scene(n_agents=1, n_cams=2)
    student = [dict(p) for p in teacher]
    student = [{**p, "pts3d_cam": p["pts3d_cam"] * math.exp(0.3)} for p in student]  # metric scene scale e^0.3
    theta, shift = 0.25, (0.0, 2.0, 0.0)
    _moved(student, 1, make_pose(rot_z(theta), shift))  # camera 1 moves 2 m and turns by theta
    tau, rho = 0.5, (lambda x: robust_penalty(torch.tensor(x, dtype=torch.float64), 1.0, 1.0).item())
    loss, d = scale_distill_loss(views, student, tau=tau, robust_alpha=1.0, robust_c=1.0,
                                 scale_weight=1.0, trans_weight=2.0, rot_weight=3.0)
    assert d["distill/scale_abs_log"].item() == pytest.approx(0.3)
    assert d["distill/trans_m"].item() == pytest.approx(2.0)
    assert d["distill/rot_rad"].item() == pytest.approx(theta)
    assert d["distill/scale"].item() == pytest.approx(rho(0.3 / tau))
    assert d["distill/trans"].item() == pytest.approx(rho(2.0 / tau) / 1)  # one non-reference view
    assert d["distill/rot"].item() == pytest.approx(rho(theta / tau))
    assert loss.item() == pytest.approx(rho(0.6) + 2 * rho(4.0) + 3 * rho(0.5))


def test_gradient_reaches_only_the_student():
    views, teacher = _scene()
    for v in views:
        for k in TEACHER_KEYS:
            v[k] = v[k].clone().requires_grad_()
    student = perfect_preds(views, scale=0.9, requires_grad=True)
    loss, _ = scale_distill_loss(views, student)
    loss.backward()
    assert all(v[k].grad is None for v in views for k in TEACHER_KEYS)
    assert sum(p["cam_trans"].grad.abs().sum() + p["pts3d_cam"].grad.abs().sum() for p in student) > 0
    assert all(p["metric_scaling_factor"].grad is None for p in student)  # s alone is not a target


def test_invariant_to_the_students_world_frame():
    views, teacher = _scene(seed=3)
    student = perfect_preds(views, scale=1.1)
    _moved(student, 2, make_pose(rot_z(0.1), (0.5, 0.0, 0.0)))
    G = random_rigid(torch.Generator().manual_seed(99))
    moved = [dict(p) for p in student]
    for v, p in enumerate(moved):
        T = G @ pose_from_quat_trans(p["cam_quats"], p["cam_trans"])
        q, t = pose_to_quat_trans(T)
        moved[v] = {**p, "cam_quats": q, "cam_trans": t}
    a, b = scale_distill_loss(views, student)[0], scale_distill_loss(views, moved)[0]
    assert a.item() > 0 and b.item() == pytest.approx(a.item(), abs=1e-10)


def test_ego_views_only():
    views, teacher = _scene(n_agents=2, n_cams=2)
    student = [dict(p) for p in teacher]
    _moved(student, 3, make_pose(rot_z(0.3), (1.0, 0.0, 0.0)))  # a CAV camera
    student[2] = {**student[2], "pts3d_cam": student[2]["pts3d_cam"] * 2}
    ego, d = scale_distill_loss(views, student, which_views="ego")
    assert ego.item() == pytest.approx(0.0, abs=1e-12) and d["distill/n_views"].item() == 2
    assert scale_distill_loss(views, student, which_views="all")[0].item() > 0.1


def test_missing_teacher_keys_is_a_config_error():
    views = make_views()
    with pytest.raises(ConfigError, match="teacher"):
        scale_distill_loss(views, perfect_preds(views))


def test_single_view_has_no_pose_terms():
    views, teacher = _scene(n_agents=1, n_cams=1)
    student = [{**teacher[0], "pts3d_cam": teacher[0]["pts3d_cam"] * 2}]
    loss, d = scale_distill_loss(views, student, robust=False)
    assert d["distill/trans"].item() == 0.0 and d["distill/rot"].item() == 0.0
    assert loss.item() == pytest.approx(math.log(2.0), rel=1e-12)


def test_gradcheck_float64_and_module_equals_function():
    views, teacher = _scene(n_agents=2, n_cams=2, seed=5)
    gen = torch.Generator().manual_seed(1)
    keys = ["cam_quats", "cam_trans", "metric_scaling_factor", "pts3d_cam"]
    xs = [(teacher[v][k].detach() * (1 + 0.1 * torch.rand(teacher[v][k].shape, generator=gen, dtype=torch.float64)))
          .requires_grad_() for v in range(4) for k in keys]

    def fn(*x):
        preds = [dict(zip(keys, x[4 * v:4 * v + 4])) for v in range(4)]
        return scale_distill_loss(views, preds, tau=0.7, robust_c=0.5)[0]

    assert torch.autograd.gradcheck(fn, xs)
    preds = [dict(zip(keys, xs[4 * v:4 * v + 4])) for v in range(4)]
    cfg = DistillConfig(tau=0.7, robust_c=0.5, views="ego", rot_weight=2.0)
    assert ScaleDistillLoss(cfg)(views, preds)[0].item() == pytest.approx(
        scale_distill_loss(views, preds, tau=0.7, robust_c=0.5, which_views="ego", rot_weight=2.0)[0].item())
