"""Their config tree by Hydra composition, and the checks before any work: image size vs the encoder's patch,
a missing package vs a missing or broken dependency (one line each, exit 2)."""

import importlib
import sys

import pytest
import torch
from fake_views import make_views

from coopmap.cli import main as cli_main
from coopmap.errors import ConfigError, ShapeError
from coopmap.models import mapanything as ma
from coopmap.models.factory import build_model
from coopmap.models.mapanything import (
    MapAnythingImportError,
    MapAnythingNotInstalledError,
    import_mapanything,
)
from fake_mapanything import FakeMapAnything, install_fake_package

#: their layout in miniature: train.yaml with groups, a machine group with ??? paths, model group files that
#: interpolate into the composed config (so they cannot be read alone).
THEIR_TREE = {
    "train.yaml": "defaults:\n  - machine: default\n  - model: default\n  - _self_\noutput_dir: ${hydra:run.dir}\n",
    "machine/default.yaml": "root_uniception_pretrained_checkpoints_dir: ???\n",
    "model/default.yaml": "model_str: ???\nmodel_config:\n  pretrained_checkpoint_path: null\n",
    "model/mapanything.yaml": ("defaults:\n  - default\n  - encoder: dinov2_large\n  - _self_\nmodel_str: mapanything\n"
                               "model_config:\n  name: mapanything\n  encoder_config: ${model.encoder}\n"
                               "data_norm_type: ${model.encoder.data_norm_type}\n"),
    "model/encoder/dinov2_large.yaml": "encoder_str: dinov2\ndata_norm_type: dinov2\npatch_size: 14\n",
    "model/encoder/croco_512.yaml": ("encoder_str: croco\ndata_norm_type: croco\npatch_size: 16\npretrained_checkpoint_path:"
                                     " ${machine.root_uniception_pretrained_checkpoints_dir}/CroCo.pth\n"),
}
CROCO_CONFIG = {"pretrained_checkpoint_path": None, "name": "mapanything",
                "encoder_config": {"encoder_str": "croco", "data_norm_type": "croco", "patch_size": 16,
                                   "pretrained_checkpoint_path": "/ckpts/CroCo.pth"}}


@pytest.fixture
def their_configs(tmp_path):
    root = tmp_path / "map-anything" / "configs"
    for rel, text in THEIR_TREE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_their_config_folder_composes_with_their_overrides(their_configs, monkeypatch):
    calls = install_fake_package(monkeypatch)
    build_model({"name": "mapanything", "hydra_config": str(their_configs),
                 "hydra_overrides": ["model=mapanything", "model/encoder=croco_512",
                                     "machine.root_uniception_pretrained_checkpoints_dir=/ckpts"]})
    assert calls["init_model"] == ("mapanything", CROCO_CONFIG)


def test_their_model_group_file_composes_as_that_option(their_configs, monkeypatch):
    calls = install_fake_package(monkeypatch)
    build_model({"name": "mapanything", "hydra_config": str(their_configs / "model" / "mapanything.yaml"),
                 "hydra_overrides": ["model/encoder=croco_512",
                                     "machine.root_uniception_pretrained_checkpoints_dir=/ckpts"]})
    assert calls["init_model"] == ("mapanything", CROCO_CONFIG)
    build_model({"name": "mapanything", "hydra_config": str(their_configs / "model" / "mapanything.yaml")})
    assert calls["init_model"][1]["encoder_config"]["encoder_str"] == "dinov2"  # their default encoder


def test_a_composed_run_config_is_read_directly(tmp_path, monkeypatch):
    calls = install_fake_package(monkeypatch)
    run = tmp_path / "run" / ".hydra" / "config.yaml"
    run.parent.mkdir(parents=True)
    run.write_text("output_dir: /runs/x\nmodel:\n  model_str: mapanything\n  model_config:\n    name: small\n")
    build_model({"name": "mapanything", "hydra_config": str(run)})
    assert calls["init_model"] == ("mapanything", {"name": "small"})
    with pytest.raises(ConfigError, match="a composed config, which takes no overrides"):
        build_model({"name": "mapanything", "hydra_config": str(run), "hydra_overrides": ["model/encoder=x"]})


@pytest.mark.parametrize("overrides, expected", [
    (["model=mapanything", "model/encoder=croco_512"],
     "root_uniception_pretrained_checkpoints_dir"),  # their ??? machine path, needed by the encoder config
    (["model=mapanything", "model/encoder=no_such_encoder"], "no_such_encoder"),
    (["model=mapanything", "model.no_such_key=1"], "no_such_key"),
])
def test_composition_problems_are_one_line_config_errors(their_configs, monkeypatch, capsys, overrides, expected):
    install_fake_package(monkeypatch)
    cfg = {"name": "mapanything", "hydra_config": str(their_configs), "hydra_overrides": overrides}
    with pytest.raises(ConfigError, match=expected) as info:
        build_model(cfg)
    assert "\n" not in str(info.value) and str(info.value).startswith("model.hydra_config: ")
    quoted = "[" + ",".join(f"'{o}'" for o in overrides) + "]"  # Hydra's grammar: quote items holding '='"
    assert cli_main(["teacher-cache", "data.root=/nonexistent", "model=mapanything",
                     f"model.hydra_config={their_configs}", f"model.hydra_overrides={quoted}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("coopmap teacher-cache: error: model.hydra_config: ")


def test_other_hydra_config_mistakes(tmp_path, monkeypatch):
    install_fake_package(monkeypatch)
    with pytest.raises(ConfigError, match="no such file or folder"):
        build_model({"name": "mapanything", "hydra_config": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="hydra_overrides is set but model.hydra_config is not"):
        build_model({"name": "mapanything", "hydra_overrides": ["model=mapanything"]})
    (tmp_path / "x.yaml").write_text("lr: 1\n")
    with pytest.raises(ConfigError, match="expected MapAnything's model config with 'model_str'"):
        build_model({"name": "mapanything", "hydra_config": str(tmp_path / "x.yaml")})


def test_image_size_is_checked_against_the_encoder_patch(tmp_path, monkeypatch, capsys):
    install_fake_package(monkeypatch)
    monkeypatch.setattr(FakeMapAnything, "PATCH", 16)
    model = build_model({"name": "mapanything"})
    with pytest.raises(ShapeError) as info:
        model(make_views("single"))  # 56 x 42: multiples of 14, not of 16
    assert str(info.value) == ("images are 56x42 (W x H) but MapAnything's encoder fake_patch16 needs multiples of its "
                               "patch size 16: set data.resolution=[64, 48] data.patch_size=16")
    assert model.model.inputs == []  # refused before their code ran
    model(make_views("single", height=48, width=64))
    rc = cli_main(["train", f"data.root={tmp_path}", f"out_dir={tmp_path / 'run'}", "model=mapanything",
                   "data.resolution=[126,98]", "trainer.progress=false"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "images are 126x98 (W x H) but MapAnything's encoder fake_patch16 needs multiples of its patch size 16: " \
           "set data.resolution=[128, 96]" in err


def test_missing_package_vs_missing_dependency(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mapanything", None)
    with pytest.raises(MapAnythingNotInstalledError, match="which is not installed"):
        import_mapanything()
    # an installed package whose import fails on a dependency
    pkg = tmp_path / "site" / "mapanything"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("import timm_not_installed_here.layers\n")
    monkeypatch.delitem(sys.modules, "mapanything")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    monkeypatch.setattr(ma, "_missing_requirements", lambda dist="mapanything": ["uniception", "rerun-sdk"])
    with pytest.raises(MapAnythingImportError) as info:
        import_mapanything()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg == (f"mapanything is installed ({pkg}) but its dependency 'timm_not_installed_here' is missing; "
                   "requirements it declares that are not installed: uniception, rerun-sdk "
                   "(pip install timm_not_installed_here)")
    # a broken build (e.g. torchvision compiled for another torch) is not "not installed" either
    (pkg / "models" / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    for name in [m for m in sys.modules if m.startswith("mapanything")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MapAnythingImportError, match="fails with RuntimeError: operator torchvision::nms does not"):
        import_mapanything()
    for name in [m for m in sys.modules if m.startswith("mapanything")]:
        monkeypatch.delitem(sys.modules, name)


def test_missing_requirements_reads_the_declared_ones(monkeypatch):
    from importlib import metadata

    monkeypatch.setattr(metadata, "requires", lambda dist: ["torch>=2", "surely-not-installed-pkg==1.0",
                                                            "pytest ; extra == 'dev'", "other-missing-one[x]"])
    assert ma._missing_requirements() == ["surely-not-installed-pkg", "other-missing-one"]
    assert torch.__version__  # torch itself is installed


def test_teacher_cache_fingerprint_tells_their_overrides_apart():
    from coopmap.models.teacher_cache import teacher_fingerprint

    base = {"name": "mapanything", "hydra_config": "/their/configs"}
    croco = teacher_fingerprint({**base, "hydra_overrides": ["model=mapanything", "model/encoder=croco_512"]})
    dino = teacher_fingerprint({**base, "hydra_overrides": ["model=mapanything", "model/encoder=dinov2_large"]})
    assert croco["model"]["hydra_overrides"] == ["model=mapanything", "model/encoder=croco_512"]
    assert croco != dino
