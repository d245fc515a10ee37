"""The MapAnything loader without MapAnything: the conversion against the spec, a fake package, the install error."""

import sys

import pytest
import torch
from fake_views import MEAN, STD, make_views
from omegaconf import OmegaConf

from coopmap.cli import main as cli_main
from coopmap.errors import CheckpointError, ConfigError
from coopmap.models.factory import build_model
from coopmap.models.mapanything import (
    INSTALL_COMMAND,
    MapAnythingAdapter,
    MapAnythingNotInstalledError,
    renormalize_images,
    save_mapanything_checkpoint,
    views_to_mapanything_inputs,
)
from fake_mapanything import FakeMapAnything, install_fake_package

#: spec section 1: the inputs MapAnything's forward accepts (+ the bookkeeping keys of section 2).
SPEC_INPUT_KEYS = {
    "img", "data_norm_type", "ray_directions_cam", "depth_along_ray", "camera_pose_quats", "camera_pose_trans",
    "is_metric_scale", "instance", "idx", "true_shape",
}
GROUND_TRUTH_KEYS = {"camera_pose", "depthmap", "pts3d", "pts3d_cam", "valid_mask", "dense_depthmap", "agent_pose"}


def test_conversion_keeps_only_spec_keys():
    views = make_views("coop", batch=2)
    images_only = views_to_mapanything_inputs(views)
    assert len(images_only) == len(views)
    assert set(images_only[0]) == {"img", "data_norm_type", "instance", "idx", "true_shape"}
    everything = views_to_mapanything_inputs(views, geometric_inputs=sorted(SPEC_INPUT_KEYS - {"img", "data_norm_type", "instance", "idx", "true_shape"}))
    for entry in everything:
        assert set(entry) == SPEC_INPUT_KEYS
        assert not set(entry) & GROUND_TRUTH_KEYS
        assert entry["data_norm_type"] == ["dinov2", "dinov2"]  # a list of str, never a bare string
    with pytest.raises(ConfigError, match="camera_pose'] are not MapAnything inputs"):
        views_to_mapanything_inputs(views, geometric_inputs=["camera_pose"])


def test_renormalisation_recovers_the_rgb():
    views = make_views("single")
    img = views[0]["img"]
    rgb = img * torch.tensor(STD, dtype=torch.float32).reshape(1, 3, 1, 1) + torch.tensor(MEAN, dtype=torch.float32).reshape(1, 3, 1, 1)
    torch.testing.assert_close(renormalize_images(img, "dinov2", "dust3r"), (rgb - 0.5) / 0.5, atol=1e-5, rtol=0)
    torch.testing.assert_close(renormalize_images(img, "dinov2", "identity"), rgb, atol=1e-5, rtol=0)
    assert renormalize_images(img, "dinov2", "croco") is img  # same statistics
    with pytest.raises(ConfigError, match="unknown data_norm_type 'imagenet'"):
        renormalize_images(img, "dinov2", "imagenet")


@pytest.fixture
def fake_package(monkeypatch):
    return install_fake_package(monkeypatch)


def test_loads_from_pretrained_and_calls_forward(fake_package):
    model = build_model({"name": "mapanything", "pretrained": "facebook/map-anything"})
    assert isinstance(model, MapAnythingAdapter) and model.model.tag == "pretrained:facebook/map-anything"
    assert model.data_norm_type == "dust3r"
    views = make_views("single")
    model(views)
    (inputs,) = model.model.inputs
    assert inputs[0]["data_norm_type"] == ["dust3r"]
    torch.testing.assert_close(inputs[0]["img"], renormalize_images(views[0]["img"], "dinov2", "dust3r"))


def test_loads_from_hydra_config_and_checkpoint(fake_package, tmp_path):
    trained = FakeMapAnything()
    with torch.no_grad():
        trained.dpt_regressor_head.weight.fill_(0.25)
    ckpt = tmp_path / "checkpoint-last.pth"
    save_mapanything_checkpoint(trained, ckpt, epoch=7)
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text("model:\n  model_str: mapanything\n  model_config:\n    name: small\n")
    model = build_model({"name": "mapanything", "hydra_config": str(cfg_file), "checkpoint": str(ckpt)})
    assert fake_package["init_model"] == ("mapanything", {"name": "small"})
    assert model.model.tag == "hydra"
    assert (model.model.dense_head[2].weight == 0.25).all()  # dense_head shares dpt_regressor_head
    # our adapter's own state dict (keys prefixed "model.") loads as well
    ours = tmp_path / "ours.pt"
    torch.save({"model": MapAnythingAdapter(trained).state_dict()}, ours)
    again = build_model({"name": "mapanything", "checkpoint": str(ours)})
    assert (again.model.dpt_regressor_head.weight == 0.25).all()
    torch.save({"model": {"foo.weight": torch.zeros(2)}}, tmp_path / "alien.pt")
    with pytest.raises(CheckpointError, match="alien.pt: none of its 1 tensors match"):
        build_model({"name": "mapanything", "checkpoint": str(tmp_path / "alien.pt")})


def test_saved_checkpoint_keeps_shared_tensors_and_loads_back(tmp_path):
    net = FakeMapAnything()
    path = tmp_path / "checkpoint-best.pth"
    save_mapanything_checkpoint(MapAnythingAdapter(net), path, epoch=3, args=OmegaConf.create({"lr": 1e-4}))
    ck = torch.load(path, map_location="cpu", weights_only=True)
    assert ck["epoch"] == 3 and ck["args"] == {"lr": 1e-4}
    state = ck["model"]
    assert set(state) == set(net.state_dict())  # MapAnything's own keys, no adapter prefix
    assert state["dense_head.2.weight"].data_ptr() == state["dpt_regressor_head.weight"].data_ptr()
    fresh = FakeMapAnything()
    result = fresh.load_state_dict(state, strict=False)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in net.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    # the shared tensor is stored once: the file is about half the size of a copy with separate tensors
    separate = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save({"model": separate}, tmp_path / "separate.pth")
    assert path.stat().st_size < 0.6 * (tmp_path / "separate.pth").stat().st_size


def test_without_the_package_the_error_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mapanything", None)  # makes `import mapanything` fail
    with pytest.raises(MapAnythingNotInstalledError) as info:
        build_model({"name": "mapanything"})
    assert INSTALL_COMMAND in str(info.value)
    assert INSTALL_COMMAND == "pip install git+https://github.com/facebookresearch/map-anything"
    assert cli_main(["teacher-cache", "data.root=/nonexistent", "model=mapanything"]) == 2
    err = capsys.readouterr().err
    assert "coopmap teacher-cache: error: model=mapanything needs the 'mapanything' package" in err
    assert INSTALL_COMMAND in err
