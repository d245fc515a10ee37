"""The oracle's reference and failure knobs, checked through frame_metrics against closed-form values.

Scene (fake_views): ground and boxes at most 2.4 m high, sky beyond 80 m, cameras 1.6 m above the ground; so the
unperturbed dense oracle has nothing above z_max = 4 m, and neither has the GT LiDAR above z_max - 1 m.
"""

import math

import numpy as np
import pytest
import torch
from fake_views import make_views

from coopmap.config import compose
from coopmap.errors import ConfigError
from coopmap.geometry import geodesic_angle, transform_points
from coopmap.metrics import MetricsConfig, frame_metrics
from coopmap.models.config import ModelConfig
from coopmap.models.factory import build_model
from coopmap.models.oracle import ORACLE_CONF

#: every point is "in range" (the crop is not what these tests are about); LiDAR support only above 3 m (the
#: scene's boxes reach 2.4 m).
WIDE = MetricsConfig(x_range=[-1e6, 1e6], y_range=[-1e6, 1e6], bev_cell=1e5, lidar_float_margin=1.0)
FLOATER_M = 10.0


def _oracle(views, **knobs):
    with torch.no_grad():
        return build_model(ModelConfig(name="oracle", **knobs))(views)


def _lidar(views) -> np.ndarray:
    """The GT LiDAR (labelled points of every view) in the ego LiDAR frame, (M, 3)."""
    T = (views[0]["T_egolidar_from_cam"][0] @ torch.linalg.inv(views[0]["camera_pose"][0])).double()
    pts = torch.cat([v["pts3d"][0][v["valid_mask"][0]] for v in views]).double()
    return transform_points(T, pts).numpy()


def _heights(views, preds) -> np.ndarray:
    """(V, H, W) ego-frame height of every predicted pixel (through the GT rig)."""
    return np.stack([transform_points(v["T_ego_from_cam"][0].double(), p["pts3d_cam"][0].double())[..., 2].numpy()
                     for v, p in zip(views, preds)])


def _sky_and_unlabelled(views):
    dense = np.stack([v["dense_depthmap"][0, ..., 0].numpy() for v in views])
    valid = np.stack([v["valid_mask"][0].numpy() for v in views])
    return dense, valid, (dense == 0) & ~valid, (dense > 0) & ~valid


def _rising(views) -> np.ndarray:
    """(V, H, W) bool: the pixel's ray goes up in the ego frame (cameras are below FLOATER_M: it reaches it)."""
    return np.stack([(v["ray_directions_cam"][0].double() @ v["T_ego_from_cam"][0, 2, :3].double()).numpy() > 0
                     for v in views])


@pytest.fixture(scope="module")
def single():
    return make_views("single", batch=1, seed=2)


@pytest.fixture(scope="module")
def coop():
    return make_views("coop", batch=1, n_agents=3, seed=1)


def test_unperturbed_dense_oracle_scores_zero_on_every_failure_metric(single, coop):
    for views in (single, coop):
        out = frame_metrics(views, _oracle(views), _lidar(views), WIDE)
        for k in ("sky_float_ratio", "sky_below_ratio", "lidar_float_ratio", "floating_ratio"):
            assert out[k] == 0.0, k
        assert out["unlabelled_depth_abs_rel"] < 1e-6 and out["unlabelled_depth_mae"] < 1e-5


def test_a_pixel_with_a_lidar_label_is_never_sky():
    """A resampled dense map can be 0 where the LiDAR hit: the oracle predicts that return, it is no sky."""
    views = [dict(v) for v in make_views("single", batch=1, seed=2)]
    v = views[1]
    sky = (v["dense_depthmap"][..., 0] == 0) & ~v["valid_mask"]
    b, i, j = sky.nonzero()[0].tolist()
    v["valid_mask"], v["depthmap"] = v["valid_mask"].clone(), v["depthmap"].clone()
    v["valid_mask"][b, i, j], v["depthmap"][b, i, j, 0] = True, 30.0
    out = frame_metrics(views, _oracle(views), _lidar(views), WIDE)
    assert out["sky_below_ratio"] == 0.0 and out["sky_float_ratio"] == 0.0


def test_sky_floaters_give_the_planted_share(single):
    preds = _oracle(single, sky_float_frac=0.5, float_height_m=FLOATER_M, seed=3)
    dense, _, sky, _ = _sky_and_unlabelled(single)
    eligible = (sky & _rising(single)).reshape(len(single), -1).sum(1)
    n_planted = int(sum(math.floor(0.5 * n) for n in eligible))
    z = np.stack([p["pts3d_cam"][0, ..., 2].numpy() for p in preds])
    planted = sky & (z > 0)
    assert planted.sum() == n_planted > 100
    np.testing.assert_allclose(_heights(single, preds)[planted], FLOATER_M, atol=1e-3)
    assert (np.stack([p["conf"][0].numpy() for p in preds])[planted] == ORACLE_CONF).all()
    n_points = int((dense > 0).sum()) + n_planted  # every non-sky pixel is a point, plus the floaters
    out = frame_metrics(single, preds, _lidar(single), WIDE)
    assert out["sky_float_ratio"] == pytest.approx(n_planted / n_points, rel=1e-12)
    assert out["floating_ratio"] == pytest.approx(n_planted / n_points, rel=1e-12)  # nothing else is above 4 m
    assert out["lidar_float_ratio"] == pytest.approx(n_planted / n_points, rel=1e-12)  # no LiDAR up there
    assert out["unlabelled_depth_abs_rel"] < 1e-6  # sky floaters leave the non-sky pixels alone
    # the same seed plants the same pixels; another seed other ones
    again = _oracle(single, sky_float_frac=0.5, float_height_m=FLOATER_M, seed=3)
    other = _oracle(single, sky_float_frac=0.5, float_height_m=FLOATER_M, seed=4)
    assert all(torch.equal(a["pts3d"], b["pts3d"]) for a, b in zip(preds, again))
    assert not all(torch.equal(a["pts3d"], b["pts3d"]) for a, b in zip(preds, other))


def test_lidar_support_under_the_floaters_removes_them(single):
    preds = _oracle(single, sky_float_frac=0.5, float_height_m=FLOATER_M)
    h = _heights(single, preds)
    T_L_from_E = torch.linalg.inv(single[0]["T_ego_from_cam"][0] @ torch.linalg.inv(
        single[0]["T_egolidar_from_cam"][0])).double()
    floaters_E = np.concatenate([transform_points(v["T_ego_from_cam"][0].double(), p["pts3d_cam"][0].double())
                                 .numpy()[hv > 4.0] for v, p, hv in zip(single, preds, h)])
    lidar = _lidar(single)
    low = WIDE.z_max - WIDE.lidar_float_margin  # a supporting return must be strictly above it
    for z_support, expected_zero in ((low + 0.01, True), (low - 0.01, False)):
        support_E = floaters_E.copy()
        support_E[:, 2] = z_support
        support_L = transform_points(T_L_from_E, torch.as_tensor(support_E)).numpy()
        out = frame_metrics(single, preds, np.concatenate([lidar, support_L]), WIDE)
        assert (out["lidar_float_ratio"] == 0.0) == expected_zero
        assert out["floating_ratio"] > 0.05 and out["sky_float_ratio"] == out["floating_ratio"]


def test_unlabelled_floaters_give_the_closed_form_depth_error(coop):
    preds = _oracle(coop, unlabelled_float_frac=0.5, float_height_m=FLOATER_M)
    dense, _, sky, unl = _sky_and_unlabelled(coop)
    eligible = (unl & _rising(coop)).reshape(len(coop), -1).sum(1)
    n_planted = int(sum(math.floor(0.5 * n) for n in eligible))
    z = np.stack([p["pts3d_cam"][0, ..., 2].numpy() for p in preds]).astype(np.float64)
    planted = unl & (np.abs(_heights(coop, preds) - FLOATER_M) < 1e-3)
    assert planted.sum() == n_planted > 20
    out = frame_metrics(coop, preds, _lidar(coop), WIDE)
    rel = np.abs(z[planted] - dense[planted]) / dense[planted]
    assert out["unlabelled_depth_abs_rel"] == pytest.approx(rel.sum() / unl.sum(), rel=1e-6)
    assert out["unlabelled_depth_mae"] == pytest.approx(np.abs(z - dense)[planted].sum() / unl.sum(), rel=1e-6)
    assert out["sky_float_ratio"] == 0.0  # not sky
    assert out["floating_ratio"] == pytest.approx(n_planted / int((dense > 0).sum()), rel=1e-12)


def test_identity_poses_score_the_gt_camera_distances(coop):
    preds = _oracle(coop, pose_reference="identity")
    for p in preds:
        torch.testing.assert_close(p["pts3d"], p["pts3d_cam"])
        assert p["cam_trans"].abs().max() == 0
    out = frame_metrics(coop, preds, _lidar(coop))
    gt = torch.stack([v["camera_pose"][0].double() for v in coop[1:]])  # view 0 is the identity
    assert out["pose_abs_t"] == pytest.approx(gt[:, :3, 3].norm(dim=-1).mean().item(), rel=1e-5)
    angle = geodesic_angle(gt[:, :3, :3], torch.eye(3, dtype=torch.float64).expand_as(gt[:, :3, :3]))
    assert out["pose_abs_r"] == pytest.approx(math.degrees(angle.mean().item()), abs=1e-3)


def test_rig_at_ego_is_exact_in_single_mode_and_scores_the_agent_distances_in_coop(single, coop):
    out = frame_metrics(single, _oracle(single, pose_reference="rig_at_ego"), _lidar(single))
    assert out["pose_abs_t"] < 1e-5 and out["pose_abs_r"] < 1e-3 and out["depth_mae"] < 1e-5
    preds = _oracle(coop, pose_reference="rig_at_ego")
    A = {int(v["agent_index"][0]): v["agent_pose"][0].double() for v in coop}
    for v, p in zip(coop, preds):  # every camera sits on the rig of a vehicle at the ego's origin
        torch.testing.assert_close(p["cam_trans"][0].double(), (A[0] @ v["T_agent_from_cam"][0].double())[:3, 3],
                                   atol=1e-5, rtol=0)
    out = frame_metrics(coop, preds, _lidar(coop))
    others = [A[a] for a in sorted(A) if a > 0]
    dist = np.mean([(T[:3, 3] - A[0][:3, 3]).norm().item() for T in others])
    rot = np.mean([math.degrees(geodesic_angle(T[:3, :3], A[0][:3, :3]).item()) for T in others])
    assert out["agent_pose_abs_t"] == pytest.approx(dist, rel=1e-5)
    assert out["agent_pose_abs_r"] == pytest.approx(rot, abs=1e-3)


def test_constant_depth_closed_form(coop):
    c = 5.5
    preds = _oracle(coop, constant_depth_m=c)
    for p in preds:
        assert (p["pts3d_cam"][..., 2] == c).all() and (p["conf"] == ORACLE_CONF).all()
        assert p["non_ambiguous_mask"].all()
    out = frame_metrics(coop, preds, _lidar(coop))
    g = np.concatenate([v["depthmap"][0, ..., 0][v["valid_mask"][0]].double().numpy() for v in coop])
    assert out["depth_mae"] == pytest.approx(np.abs(c - g).mean(), rel=1e-6)
    assert out["depth_abs_rel"] == pytest.approx((np.abs(c - g) / g).mean(), rel=1e-6)
    assert out["scale_err"] == pytest.approx(abs(np.median(c / g) - 1), rel=1e-6)
    assert out["pose_abs_t"] < 1e-5  # poses stay GT
    dense, _, _, unl = _sky_and_unlabelled(coop)
    d = dense[unl].astype(np.float64)
    assert out["unlabelled_depth_abs_rel"] == pytest.approx((np.abs(c - d) / d).mean(), rel=1e-6)


def test_knobs_by_hydra_override_and_their_errors(coop):
    cfg = compose("teacher_cache", ["data.root=/tmp/x", "model=oracle", "model.pose_reference=rig_at_ego",
                                    "model.constant_depth_m=5.5", "model.sky_float_frac=0.5"])
    preds = build_model(cfg.model)(coop)
    assert (preds[5]["pts3d_cam"][..., 2] >= 5.5 - 1e-4).all()
    for knobs, key in (({"pose_reference": "ego"}, "model.pose_reference"),
                       ({"constant_depth_m": 0.0}, "model.constant_depth_m"),
                       ({"sky_float_frac": 1.5}, "model.sky_float_frac"),
                       ({"unlabelled_float_frac": -0.1}, "model.unlabelled_float_frac"),
                       ({"pose_reference": "identity", "agent_offset_m": 2.0}, "model.agent_offset_m")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            build_model(ModelConfig(name="oracle", **knobs))
