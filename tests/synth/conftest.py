"""Fixtures of the synth tests: a noise-free tree whose LiDAR points lie exactly on the rendered surfaces."""

import pytest


@pytest.fixture(scope="session")
def exact_tree(tmp_path_factory):
    """(split folder, summary) of 1 scenario, 2 CAVs x 2 frames, 200x150, seed 3, LiDAR noise off."""
    from coopmap.synth import generate

    root = tmp_path_factory.mktemp("exact_tree")
    summary = generate(root, scenarios=1, agents=2, frames=2, seed=3, image_size=(200, 150), lidar_noise=False,
                       progress=False)
    return root / "train", summary
