"""Shared fixtures.

``synth_tree``: a small synthetic OPV2V tree written once per test session by ``coopmap.synth.generate``:
``<root>/train/<scenario>/`` (1 scenario) and ``<root>/test/<scenario>/`` (1 scenario), 3 CAVs x 3 frames
each, 200x150 images, seed 0, ascii .pcd with LiDAR noise on, plus ``TTTTTT_depth0..3.npy`` dense depth.
It returns the root path (a ``pathlib.Path``); treat it as read-only.
"""

from __future__ import annotations

import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one intra-op thread each avoids oversubscription
    torch.set_num_threads(1)

SYNTH_TREE_SPLITS = ("train", "test")
SYNTH_TREE_CONFIG = {"scenarios": 1, "agents": 3, "frames": 3, "seed": 0, "image_size": (200, 150)}


@pytest.fixture(scope="session")
def synth_tree(tmp_path_factory):
    """Root of a small synthetic OPV2V tree with ``train`` and ``test`` splits (see module docstring)."""
    from coopmap.synth import generate

    root = tmp_path_factory.mktemp("synth_tree")
    for split in SYNTH_TREE_SPLITS:
        generate(root, split=split, progress=False, **SYNTH_TREE_CONFIG)
    return root
