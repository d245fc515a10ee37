"""Fixtures of the reliability tests: one pristine synthetic tree per session, copied for every case to damage.

``pristine``: ``<root>/test/<scenario>/<agent>/`` written by ``coopmap.synth.generate`` (1 scenario, 2 CAVs x
2 frames, 200x150 images, binary .pcd, seed 0). Never modify it: ``fresh_tree`` gives a private copy.
"""

from __future__ import annotations

import shutil

import pytest

PRISTINE = {"split": "test", "scenarios": 1, "agents": 2, "frames": 2, "seed": 0, "image_size": (200, 150),
            "pcd_format": "binary"}


@pytest.fixture(scope="session")
def pristine(tmp_path_factory):
    from coopmap.synth import generate

    root = tmp_path_factory.mktemp("pristine")
    generate(root, progress=False, **PRISTINE)
    return root


@pytest.fixture
def fresh_tree(pristine, tmp_path):
    """A private copy of the pristine tree (its index cache is not copied)."""
    root = tmp_path / "tree"
    shutil.copytree(pristine, root, ignore=shutil.ignore_patterns(".coopmap_index.json"))
    return root
