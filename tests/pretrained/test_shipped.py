"""The shipped pretrained start (coopmap/pretrained): the file matches its manifest and loads as plain tensors."""

import pytest
import torch

from coopmap.ablate.pretrain import CRITERIA
from coopmap.models.config import ModelConfig
from coopmap.models.factory import build_model
from coopmap.pretrained import manifest, pretrained_path, sha256

MAX_BYTES = 5 * 2**20


def test_file_matches_its_manifest_and_size_budget():
    m, path = manifest(), pretrained_path()
    assert sha256(path) == m["sha256"]
    assert path.stat().st_size == m["bytes"] <= MAX_BYTES
    assert m["command"].startswith("coopmap pretrain") and m["training"]["steps"] > 0
    assert m["data"]["test_seed"] != m["data"]["train_seed"]


def test_loads_with_weights_only_into_the_recorded_architecture():
    ck = torch.load(pretrained_path(), map_location="cpu", weights_only=True)
    assert set(ck) == {"model", "model_config"} and ck["model_config"] == manifest()["model_config"]
    model = build_model(ModelConfig(**ck["model_config"]))
    model.load_state_dict(ck["model"], strict=True)
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


def test_manifest_verdicts_follow_from_its_own_figures():
    m = manifest()
    assert [(c["metric"], c["mode"]) for c in m["criteria"]] == CRITERIA
    for c in m["criteria"]:
        assert c["pretrained"] == m["test_figures"][f"pretrained/{c['mode']}"][c["metric"]]
        for n, v in c["references"].items():  # paired over the same test frames: mean difference = difference
            mean, lo, hi = c["difference_ci95"][n]
            assert mean == pytest.approx(c["pretrained"] - v, rel=1e-9, abs=1e-12) and lo <= mean <= hi
        assert c["beats_all"] == all(c["difference_ci95"][n][2] < 0 for n in c["references"])
    assert m["beats_every_trivial_reference"] == all(c["beats_all"] for c in m["criteria"])


def test_the_shipped_start_beats_every_trivial_reference():  # issue 15: what the ablation's start must do
    m = manifest()
    assert m["beats_every_trivial_reference"], [c for c in m["criteria"] if not c["beats_all"]]
    assert m["data"]["test_scenarios"] >= 10
