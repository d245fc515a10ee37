"""frame_metrics on hand-made samples (tests/metrics/conftest.py) with exactly injected errors."""

import math

import numpy as np
import pytest
import torch

from coopmap.errors import ShapeError
from coopmap.metrics import MetricsConfig, chamfer_fscore, crop_range, frame_metrics

COLUMNS = {
    "depth_rmse", "depth_mae", "depth_abs_rel", "depth_delta1", "scale_err", "metric_scale_abs_rel",
    "pose_abs_t", "pose_abs_r", "agent_pose_abs_t", "agent_pose_abs_r", "chamfer", "chamfer_pred_to_gt",
    "chamfer_gt_to_pred", "precision", "recall", "fscore", "bev_iou", "bev_precision", "bev_recall",
    "floating_ratio", "sky_below_ratio", "vehicle_recall", "n_views", "n_pred_points", "n_gt_points", "n_vehicles",
    "sky_float_ratio", "unlabelled_depth_abs_rel", "unlabelled_depth_mae", "lidar_float_ratio",
    "input_agent_pose_abs_t", "input_agent_pose_abs_r", "agent_refine_t", "agent_refine_r",
}


def test_oracle_has_no_error(sample_builder):
    views, preds, lidar, _ = sample_builder()
    out = frame_metrics(views, preds, lidar)
    assert set(out) == COLUMNS and all(isinstance(v, float) for v in out.values())
    for k in ("depth_rmse", "depth_mae", "depth_abs_rel", "scale_err", "metric_scale_abs_rel", "pose_abs_t",
              "pose_abs_r", "agent_pose_abs_t", "agent_pose_abs_r", "chamfer_gt_to_pred"):
        assert abs(out[k]) < 1e-4, k
    assert out["depth_delta1"] == 1.0 and out["recall"] == 1.0 and out["bev_recall"] == 1.0
    assert out["n_views"] == 8 and out["n_gt_points"] > 100


def test_oracle_in_another_predicted_world_frame(sample_builder):
    """Predictions are re-expressed relative to the predicted view 0: a global rigid motion changes nothing."""
    W = np.eye(4)
    W[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    W[:3, 3] = [5.0, -3.0, 2.0]
    ref = frame_metrics(*sample_builder()[:3])
    out = frame_metrics(*sample_builder(pred_world=W)[:3])
    for k in COLUMNS:
        assert out[k] == pytest.approx(ref[k], abs=1e-4, nan_ok=True), k


def test_global_scale_1_25(sample_builder):
    views, preds, lidar, info = sample_builder(scale=1.25)
    out = frame_metrics(views, preds, lidar)
    assert out["scale_err"] == pytest.approx(0.25, abs=0.01)
    assert out["depth_mae"] == pytest.approx(0.25 * info["mean_gt_depth"], rel=1e-5)
    assert out["depth_abs_rel"] == pytest.approx(0.25, abs=1e-6)
    assert out["metric_scale_abs_rel"] == pytest.approx(0.25, abs=1e-6)
    t_gt = np.linalg.norm((info["T_world_from_S"] @ info["T_S_from_cam"])[1:, :3, 3], axis=-1)
    assert out["pose_abs_t"] == pytest.approx(0.25 * t_gt.mean(), rel=1e-5)
    assert out["pose_abs_r"] < 1e-4


@pytest.mark.parametrize("n_agents", [2, 3])
def test_offset_of_the_non_ego_agents(sample_builder, n_agents):
    views, preds, lidar, _ = sample_builder(n_agents=n_agents, agent_offset_m=2.0)
    out = frame_metrics(views, preds, lidar)
    V = 4 * n_agents
    share = (V - 4) / (V - 1)  # offset views among views 1..V-1
    assert out["agent_pose_abs_t"] == pytest.approx(2.0, abs=0.01)
    assert out["pose_abs_t"] == pytest.approx(share * 2.0, abs=1e-5)
    assert out["pose_abs_r"] < 1e-4 and out["agent_pose_abs_r"] < 1e-4
    assert out["depth_mae"] < 1e-4  # camera-frame depths are unchanged
    assert out["chamfer"] > 0.1  # ... but the fused cloud is not


def test_yaw_of_the_non_ego_agent(sample_builder):
    out = frame_metrics(*sample_builder(agent_rot_deg=5.0)[:3])
    assert out["agent_pose_abs_r"] == pytest.approx(5.0, abs=1e-3)
    assert out["agent_pose_abs_t"] < 1e-4  # yaw about the vehicle origin
    assert out["pose_abs_r"] == pytest.approx(4 / 7 * 5.0, abs=1e-3)


def test_single_mode_has_no_agent_error(sample_builder):
    out = frame_metrics(*sample_builder(n_agents=1)[:3])
    assert math.isnan(out["agent_pose_abs_t"]) and out["n_views"] == 4 and out["pose_abs_t"] < 1e-4


def test_point_cloud_columns_match_the_public_function(sample_builder):
    """The cloud columns equal chamfer_fscore on the clouds built by hand (ego LiDAR frame, cropped)."""
    views, preds, lidar, _ = sample_builder(agent_offset_m=1.0)
    cfg = MetricsConfig(crop_gt_to_frustums=False, fscore_threshold=1.0)
    out = frame_metrics(views, preds, lidar, cfg)
    T_L_from_c0 = views[0]["T_egolidar_from_cam"][0].double().numpy()
    pts = np.concatenate([p["pts3d"][0].reshape(-1, 3).double().numpy() for p in preds])
    pred_L = pts @ T_L_from_c0[:3, :3].T + T_L_from_c0[:3, 3]
    ref = chamfer_fscore(pred_L[crop_range(pred_L)], lidar[crop_range(lidar)], threshold=1.0)
    for k, v in ref.items():
        assert out[k] == pytest.approx(v, abs=1e-5), k


def test_gt_outside_every_frustum_is_dropped(sample_builder):
    views, preds, lidar, _ = sample_builder(n_agents=1)
    behind_all = np.array([[0.0, 0.0, -2.5]])  # under the LiDAR, inside the range, seen by no ego camera
    lidar2 = np.concatenate([lidar, np.repeat(behind_all, 50, 0)])
    a = frame_metrics(views, preds, lidar2)
    b = frame_metrics(views, preds, lidar2, MetricsConfig(crop_gt_to_frustums=False))
    assert a["n_gt_points"] == frame_metrics(views, preds, lidar)["n_gt_points"]
    assert b["n_gt_points"] == a["n_gt_points"] + 50


def test_vehicle_recall_in_range_only(sample_builder, set_boxes):
    views, preds, lidar, info = sample_builder()

    def at(x, y, z):  # a box pose in the scene frame S (= the ego vehicle frame, ground z = 0)
        T = np.eye(4)
        T[:3, 3] = [x, y, z]
        return T

    boxes = [
        (at(-0.5, 0.0, 1.9), [20.0, 20.0, 1.0]),  # 40 m x 40 m slab around the LiDAR: many predicted points
        (at(-0.5, 0.0, -1.0), [0.3, 0.3, 0.3]),  # under the ego car, in range: no predicted point
        (at(90.0, 0.0, 1.0), [2.0, 1.0, 0.8]),  # out of range: not evaluated
    ]
    set_boxes(views, info, boxes)
    out = frame_metrics(views, preds, lidar)
    assert out["n_vehicles"] == 2 and out["vehicle_recall"] == 0.5


def test_sky_below_ratio_on_dense_views(sample_builder):
    out = frame_metrics(*sample_builder(dense_views=(0, 1, 5), far_sky=True)[:3])
    assert out["sky_below_ratio"] == 0.5  # left half of row 0 at 200 m, right half at scene depth
    assert math.isnan(frame_metrics(*sample_builder()[:3])["sky_below_ratio"])


def test_pixels_without_depth_or_masked_are_not_points(sample_builder):
    views, preds, lidar, _ = sample_builder(n_agents=1)
    ref = frame_metrics(views, preds, lidar)
    for p in preds:  # half the pixels "masked" as MapAnything's infer() does: zero geometry
        p["pts3d_cam"][0, ::2] = 0.0
        p["pts3d"][0, ::2] = p["cam_trans"][0]
        p["non_ambiguous_mask"] = torch.ones(p["conf"].shape, dtype=torch.bool)
    out = frame_metrics(views, preds, lidar)
    assert out["n_pred_points"] < ref["n_pred_points"] and out["chamfer_pred_to_gt"] > 0
    preds[0]["non_ambiguous_mask"][0, 1::2] = False
    masked = frame_metrics(views, preds, lidar, MetricsConfig(use_pred_mask=True))
    assert masked["n_pred_points"] < out["n_pred_points"]


def test_with_the_oracle_model(sample_builder):
    """Cross-check with coopmap's oracle model (its injected errors, our metrics)."""
    oracle = pytest.importorskip("coopmap.models.oracle")
    views, _, lidar, info = sample_builder()
    out = frame_metrics(views, oracle.oracle_predictions(views), lidar)
    for k in ("depth_mae", "scale_err", "pose_abs_t", "pose_abs_r", "agent_pose_abs_t", "chamfer"):
        assert abs(out[k]) < 1e-4, k
    assert out["fscore"] == 1.0
    out = frame_metrics(views, oracle.oracle_predictions(views, scale=1.25), lidar)
    assert out["scale_err"] == pytest.approx(0.25, abs=0.01)
    assert out["depth_mae"] == pytest.approx(0.25 * info["mean_gt_depth"], rel=1e-5)
    out = frame_metrics(views, oracle.oracle_predictions(views, agent_offset_m=2.0), lidar)
    assert out["agent_pose_abs_t"] == pytest.approx(2.0, abs=0.01)
    assert out["pose_abs_t"] == pytest.approx(4 / 7 * 2.0, abs=1e-5)


def test_config_as_an_omegaconf_node(sample_builder):
    from omegaconf import OmegaConf

    cfg = OmegaConf.structured(MetricsConfig(fscore_threshold=1.0))
    cfg.x_range = [-20.0, 20.0]
    views, preds, lidar, _ = sample_builder()
    out = frame_metrics(views, preds, lidar, cfg)
    ref = frame_metrics(views, preds, lidar, MetricsConfig(fscore_threshold=1.0, x_range=[-20.0, 20.0]))
    assert out == pytest.approx(ref, nan_ok=True)


def test_batch_and_view_count_errors(sample_builder):
    views, preds, lidar, _ = sample_builder(n_agents=1)
    with pytest.raises(ShapeError, match="one prediction per view"):
        frame_metrics(views, preds[:3], lidar)
    views[2]["depthmap"] = views[2]["depthmap"].repeat(2, 1, 1, 1)
    with pytest.raises(ShapeError, match="batch size 1"):
        frame_metrics(views, preds, lidar)
    del views[1]["valid_mask"]
    with pytest.raises(KeyError, match="valid_mask"):
        frame_metrics(views, preds, lidar)
