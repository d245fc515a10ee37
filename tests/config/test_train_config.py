"""Every experiment preset composes, validates and holds the intended switches."""

import pytest

from coopmap.config import compose
from coopmap.errors import ConfigError
from coopmap.losses.config import as_loss_config

PRESETS = ["stage1", "stage2_naive", "stage2", "stage2_mask", "stage2_mask_distill", "stage2_full"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_instantiates(preset):
    cfg = compose("train", ["data.root=/tmp/x", f"experiment={preset}"])
    assert cfg.name == preset
    loss = as_loss_config(cfg.loss)
    expected = {
        # MapAnything's own loss (points/depth on valid pixels) from Stage 1 on; naive only in stage2_naive
        "stage1": ("single", True, 0.0, 0.0, 0.0),
        "stage2_naive": ("coop", False, 0.0, 0.0, 0.0),
        "stage2": ("coop", True, 0.0, 0.0, 0.0),
        "stage2_mask": ("coop", True, 0.1, 0.0, 0.0),
        "stage2_mask_distill": ("coop", True, 0.1, 1.0, 0.0),
        "stage2_full": ("coop", True, 0.1, 1.0, 1.0),
    }[preset]
    got = (cfg.data.mode, loss.depth.mask_aware, loss.depth.height_weight, loss.scale_distill_weight,
           loss.coop_consistency_weight)
    assert got == expected
    assert loss.base.mask_aware == loss.depth.mask_aware


def test_interface_override_names():
    cfg = compose("train", [
        "data.root=/d", "data.split=test", "data.mode=single", "data.resolution=[224,168]", "model=tiny",
        "model.checkpoint=/c.pt", "trainer.max_steps=7", "trainer.resume=never", "out_dir=/o",
        "distill.teacher_checkpoint=/t.pt", "distill.teacher_cache=/tc", "seed=3"])
    assert (cfg.data.split, cfg.trainer.max_steps, cfg.out_dir, cfg.seed) == ("test", 7, "/o", 3)
    assert cfg.distill.teacher_cache == "/tc" and cfg.model.checkpoint == "/c.pt"


def test_misspelt_training_override_names_the_key():
    with pytest.raises(ConfigError, match="trainer.max_stpes"):
        compose("train", ["data.root=/d", "trainer.max_stpes=3"])
    with pytest.raises(ConfigError, match="experiment"):
        compose("train", ["data.root=/d", "experiment=stage3"])
