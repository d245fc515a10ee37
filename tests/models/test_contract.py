import math

import pytest
import torch
from fake_views import make_views

from coopmap.errors import ShapeError
from coopmap.models.config import ModelConfig
from coopmap.models.contract import (
    OUTPUT_KEYS,
    ContractError,
    assemble_outputs,
    check_outputs,
    pred_camera_pose,
)
from coopmap.models.factory import build_model


@pytest.fixture(scope="module")
def sample():
    views = make_views("coop", batch=2, n_agents=2)
    return views, build_model(ModelConfig(name="oracle"))(views)


def _broken(preds, i, key, value):
    out = [dict(p) for p in preds]
    out[i][key] = value
    return out


def test_assemble_outputs_closed_form():
    # one pixel at 2 m along +z, s = 3, camera yawed 90 deg about z and translated by (1, 2, 3)
    rays = torch.tensor([0.0, 0.0, 2.0]).reshape(1, 1, 1, 3)  # normalised inside
    depth = torch.full((1, 1, 1, 1), 2.0)
    q = torch.tensor([[0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)]])
    t = torch.tensor([[1.0, 2.0, 3.0]])
    s = torch.tensor([[3.0]])
    out = assemble_outputs(rays, depth, q, t, s, torch.ones(1, 1, 1), torch.zeros(1, 1, 1))
    torch.testing.assert_close(out["depth_along_ray"], torch.full((1, 1, 1, 1), 6.0))
    torch.testing.assert_close(out["pts3d_cam"], torch.tensor([0.0, 0.0, 6.0]).reshape(1, 1, 1, 3))
    torch.testing.assert_close(out["cam_trans"], torch.tensor([[3.0, 6.0, 9.0]]))
    # Rz(90) keeps z: pts3d = (0, 0, 6) + (3, 6, 9)
    torch.testing.assert_close(out["pts3d"], torch.tensor([3.0, 6.0, 15.0]).reshape(1, 1, 1, 3))
    assert set(out) == set(OUTPUT_KEYS)
    assert out["non_ambiguous_mask"].dtype == torch.bool and not out["non_ambiguous_mask"].any()
    T = pred_camera_pose(out)
    torch.testing.assert_close(T[0, :3, 3], torch.tensor([3.0, 6.0, 9.0]))


def test_valid_outputs_pass(sample):
    views, preds = sample
    check_outputs(views, preds)


def test_wrong_number_of_views(sample):
    views, preds = sample
    with pytest.raises(ContractError, match="7 view dicts for 8"):
        check_outputs(views, preds[:7])


def test_missing_key_names_view_and_key(sample):
    views, preds = sample
    out = [dict(p) for p in preds]
    del out[3]["conf"]
    with pytest.raises(ContractError, match=r"view 3: missing output key 'conf'"):
        check_outputs(views, out)


def test_wrong_shape_is_a_shape_error(sample):
    views, preds = sample
    bad = _broken(preds, 2, "metric_scaling_factor", preds[2]["metric_scaling_factor"][:, 0])
    with pytest.raises(ShapeError, match=r"view 2, 'metric_scaling_factor': expected shape \(B,1\) = \(2, 1\)"):
        check_outputs(views, bad)


@pytest.mark.parametrize(
    "key, change, message",
    [
        ("ray_directions", lambda x: x * 1.1, "not unit vectors"),
        ("cam_quats", lambda x: x * 2.0, "not unit vectors"),
        ("conf", lambda x: x * 0 + 0.5, "must be >= 1"),
        ("pts3d", lambda x: x + 0.1, "inconsistent with R\\(cam_quats\\) pts3d_cam \\+ cam_trans"),
        ("pts3d_cam", lambda x: x * 1.01, "inconsistent with depth_along_ray"),
        ("non_ambiguous_mask", lambda x: ~x, "differs from logits > 0"),
        ("non_ambiguous_mask", lambda x: x.float(), "expected dtype bool"),
        ("depth_along_ray", lambda x: x * float("nan"), "non-finite"),
    ],
)
def test_broken_values_are_reported(sample, key, change, message):
    views, preds = sample
    with pytest.raises(ContractError, match=f"view 1, '{key}'.*{message}"):
        check_outputs(views, _broken(preds, 1, key, change(preds[1][key])))


def test_scale_must_be_positive_and_shared(sample):
    views, preds = sample
    with pytest.raises(ContractError, match=r"view 5, .metric_scaling_factor.: .* \(one scale per sample\)"):
        check_outputs(views, _broken(preds, 5, "metric_scaling_factor", preds[5]["metric_scaling_factor"] * 2))
    bad = [dict(p, metric_scaling_factor=-p["metric_scaling_factor"]) for p in preds]
    with pytest.raises(ContractError, match="must be > 0"):
        check_outputs(views, bad)


def test_geometry_tolerance_is_relative(sample):
    views, preds = sample
    # an error of 1e-4 relative is inside the default tolerance (1e-3 m + 1e-3 |p|), 1e-2 is not
    check_outputs(views, _broken(preds, 0, "pts3d", preds[0]["pts3d"] * (1 + 1e-4)))
    with pytest.raises(ContractError):
        check_outputs(views, _broken(preds, 0, "pts3d", preds[0]["pts3d"] * (1 + 1e-2) + 0.01))
