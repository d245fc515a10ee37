import pytest
import torch
from fake_views import make_views

from coopmap.errors import CheckpointError, ConfigError
from coopmap.models.checkpoint import file_sha256, read_checkpoint
from coopmap.models.config import ModelConfig
from coopmap.models.factory import MODEL_REGISTRY, as_model_config, build_model
from coopmap.models.oracle import Oracle
from coopmap.models.tiny import TinyMapAnything

SMALL = dict(name="tiny", patch_size=14, embed_dim=32, depth=2, num_heads=2)


def test_registry_and_unknown_name():
    assert set(MODEL_REGISTRY) == {"tiny", "oracle", "mapanything"}
    assert isinstance(build_model({"name": "oracle"}), Oracle)
    assert isinstance(build_model(ModelConfig(**SMALL)), TinyMapAnything)
    with pytest.raises(ConfigError, match="model.name='resnet' is not a model"):
        build_model({"name": "resnet"})
    with pytest.raises(ConfigError, match="embed_dimm"):
        as_model_config({"name": "tiny", "embed_dimm": 3})


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**SMALL)).eval()
    path = tmp_path / "tiny.pt"
    torch.save({"model": model.state_dict(), "step": 3, "config": {"model": SMALL}}, path)
    loaded = build_model(ModelConfig(**SMALL, checkpoint=str(path))).eval()
    views = make_views("single")
    with torch.no_grad():
        torch.testing.assert_close(loaded(views)[2]["pts3d"], model(views)[2]["pts3d"], atol=0, rtol=0)
    # a bare state dict works too
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    build_model(ModelConfig(**SMALL, checkpoint=str(tmp_path / "bare.pt")))
    assert len(file_sha256(path)) == 64


def test_truncated_checkpoint_names_the_file(tmp_path):
    model = build_model(ModelConfig(**SMALL))
    path = tmp_path / "cut.pt"
    torch.save({"model": model.state_dict()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable torch checkpoint \(truncated or corrupt\?\)"):
        build_model(ModelConfig(**SMALL, checkpoint=str(path)))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt: no such checkpoint file"):
        build_model(ModelConfig(**SMALL, checkpoint=str(tmp_path / "nope.pt")))


def test_checkpoint_from_another_config_lists_keys_and_shapes(tmp_path):
    other = build_model(ModelConfig(**{**SMALL, "embed_dim": 64, "depth": 4}))
    path = tmp_path / "other.pt"
    torch.save({"model": other.state_dict()}, path)
    with pytest.raises(CheckpointError) as info:
        build_model(ModelConfig(**SMALL, checkpoint=str(path)))
    msg = str(info.value)
    assert "other.pt: does not fit the model 'tiny'" in msg
    assert "unexpected keys [blocks.2." in msg
    assert "shape mismatches [" in msg and "patch_embed.weight: checkpoint (64, 3, 14, 14) vs model (32, 3, 14, 14)" in msg


class Arbitrary:
    """Any pickled class instance: a safe load must refuse it."""


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "obj": Arbitrary()}, path)
    with pytest.raises(CheckpointError, match="evil.pt: holds Python objects .*weights_only=True"):
        read_checkpoint(path)


def test_no_state_dict_inside(tmp_path):
    path = tmp_path / "empty.pt"
    torch.save({"epoch": 3}, path)
    with pytest.raises(CheckpointError, match="no model state dict found"):
        build_model(ModelConfig(**SMALL, checkpoint=str(path)))
