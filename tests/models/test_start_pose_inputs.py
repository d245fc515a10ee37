"""A pose-input tiny model starts from a checkpoint trained without pose inputs (the shipped pretrained model)."""

import pytest
import torch
from fake_views import make_views, noisy_shared_poses
from test_pose_inputs import POSES, SMALL, _offset

from coopmap.errors import CheckpointError
from coopmap.models.checkpoint import load_model_checkpoint
from coopmap.models.config import ModelConfig
from coopmap.models.contract import pred_camera_pose
from coopmap.models.factory import build_model
from coopmap.train.checkpoint import atomic_torch_save


def test_pose_input_model_loads_a_plain_start_and_passes_its_inputs_through(tmp_path):
    torch.manual_seed(3)
    plain = build_model(ModelConfig(**SMALL))
    with torch.no_grad():
        plain.pose_out.weight.normal_()  # a trained absolute-pose head: must not become the correction
    atomic_torch_save({"model": plain.state_dict()}, tmp_path / "start.pt")
    model = build_model(ModelConfig(**SMALL, geometric_inputs=POSES))
    load_model_checkpoint(model, tmp_path / "start.pt")
    state = model.state_dict()
    for k, v in plain.state_dict().items():
        if not k.startswith("pose_out."):
            assert torch.equal(state[k], v), k
    assert model.pose_out.weight.abs().max() == 0
    views = noisy_shared_poses(make_views("coop", n_agents=2), {1: _offset(0.5, 0.3, 0.5)})
    with torch.no_grad():
        preds = model(views)
    for view, pred in zip(views, preds):
        torch.testing.assert_close(pred_camera_pose(pred), view["shared_camera_pose"], atol=1e-5, rtol=0)


def test_a_checkpoint_with_pose_inputs_still_loads_strictly(tmp_path):
    a = build_model(ModelConfig(**SMALL, geometric_inputs=POSES))
    state = {k: v for k, v in a.state_dict().items() if not k.startswith("fusion_norm.")}  # half a pose-input model
    atomic_torch_save({"model": state}, tmp_path / "half.pt")
    with pytest.raises(CheckpointError, match="fusion_norm"):
        load_model_checkpoint(build_model(ModelConfig(**SMALL, geometric_inputs=POSES)), tmp_path / "half.pt")
