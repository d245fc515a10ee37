"""Checkpoints out: our model=mapanything checkpoints -> MapAnything's format, loaded strictly by (a fake of) their
model, tensor by tensor equal; a training run writes it; other models are refused in one line."""

import pytest
import torch

from coopmap.cli import main as cli_main
from coopmap.config import compose
from coopmap.errors import CheckpointError
from coopmap.models.export import default_output, export_checkpoint
from coopmap.models.mapanything import MapAnythingAdapter
from coopmap.train.checkpoint import atomic_torch_save, load_checkpoint
from coopmap.train.loop import train
from fake_mapanything import FakeMapAnything, install_fake_package


def _trained_adapter() -> MapAnythingAdapter:
    net = FakeMapAnything()
    with torch.no_grad():
        for i, p in enumerate(net.parameters()):
            p.copy_(torch.linspace(-1, 1, p.numel()).reshape(p.shape) * (i + 1) * 0.01)
    return MapAnythingAdapter(net)


def _assert_strict_equal(state: dict, net: torch.nn.Module) -> None:
    fresh = FakeMapAnything()
    fresh.load_state_dict(state, strict=True)  # their strict path: every key, no prefix
    assert set(state) == set(net.state_dict())
    for key, value in net.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    # dense_head still shares storage with the dpt heads (as in their own checkpoints)
    assert state["dense_head.2.weight"].data_ptr() == state["dpt_regressor_head.weight"].data_ptr()


def test_export_command_writes_their_keys(tmp_path, capsys):
    adapter = _trained_adapter()
    ours = tmp_path / "last.pt"
    atomic_torch_save({"model": adapter.state_dict(), "optimizer": {}, "step": 12,
                       "config": {"model": {"name": "mapanything"}}}, ours)
    assert all(k.startswith("model.") for k in adapter.state_dict())  # why their loader would match nothing
    assert cli_main(["export", str(ours)]) == 0
    out = default_output(ours)
    assert out == tmp_path / "last.mapanything.pth"
    assert f"wrote {out}: " in capsys.readouterr().out
    ck = torch.load(out, map_location="cpu", weights_only=True)
    assert set(ck) == {"model", "epoch", "coopmap"} and ck["epoch"] == 12
    assert ck["coopmap"]["config"] == {"model": {"name": "mapanything"}}
    _assert_strict_equal(ck["model"], adapter.model)


def test_export_of_their_own_state_dict_keeps_it(tmp_path):
    adapter = _trained_adapter()
    theirs = tmp_path / "checkpoint-last.pth"
    torch.save({"model": adapter.model.state_dict(), "epoch": 3}, theirs)
    payload = export_checkpoint(theirs, tmp_path / "out.pth")
    assert payload["epoch"] == 3
    _assert_strict_equal(torch.load(tmp_path / "out.pth", weights_only=True)["model"], adapter.model)


def test_export_refuses_another_model_in_one_line(tmp_path, capsys):
    path = tmp_path / "last.pt"
    atomic_torch_save({"model": {"w": torch.zeros(2)}, "step": 1, "config": {"model": {"name": "tiny"}}}, path)
    assert cli_main(["export", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"coopmap export: error: {path}: a model=tiny checkpoint; only model=mapanything checkpoints "
                   "hold MapAnything weights")
    mixed = tmp_path / "mixed.pt"
    atomic_torch_save({"model": {"model.w": torch.zeros(1), "x": torch.zeros(1)}}, mixed)
    with pytest.raises(CheckpointError, match="mixes adapter keys"):
        export_checkpoint(mixed, tmp_path / "o.pth")


def test_a_mapanything_training_run_writes_their_format(synth_tree, tmp_path, monkeypatch):
    install_fake_package(monkeypatch)
    out = tmp_path / "run"
    cfg = compose("train", [f"data.root={synth_tree}", f"out_dir={out}", "model=mapanything", "data.mode=single",
                            "data.resolution=[56,42]", "trainer.progress=false", "trainer.max_steps=2",
                            "trainer.lr=1e-3", "trainer.warmup_steps=0"])
    train(cfg)
    last = load_checkpoint(out / "last.pt")["model"]
    exported = torch.load(out / "mapanything.pth", map_location="cpu", weights_only=True)
    assert exported["epoch"] == 2 and exported["coopmap"]["source"] == str((out / "last.pt").absolute())
    assert set(exported["model"]) == {k[len("model."):] for k in last}
    for key, value in last.items():
        assert torch.equal(exported["model"][key[len("model."):]], value), key
    FakeMapAnything().load_state_dict(exported["model"], strict=True)
    assert not torch.equal(last["model.scale_token"], torch.zeros(8))  # it trained (not the initial weights)
