"""Slow checks (``make test-slow``): the issue's figures over more seeds and the full-size timing."""

import time

import numpy as np
import pytest
from opv2v_files import agent_frames, read_pcd, read_yaml
from synth_checks import depth_agreement, listing_errors, sparse_mask

from coopmap.synth import generate

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seven_cavs_full_size_figures(tmp_path, seed):
    """7 CAVs x 2 frames at 800x600, noise off: the 2 cm rule, the vehicle lists, the sparse coverage."""
    generate(tmp_path, agents=7, frames=2, seed=seed, image_size=(800, 600), lidar_noise=False, progress=False)
    frames = [(a, s, read_yaml(a / f"{s}.yaml")) for a, s in agent_frames(tmp_path / "train")]
    assert listing_errors(frames, lambda a, s: read_pcd(a / f"{s}.pcd")[1]) == []
    for agent, stamp, meta in frames:
        points = read_pcd(agent / f"{stamp}.pcd")[1][:, :3]
        for k in range(4):
            sparse = sparse_mask(points, meta, k, 600, 800)
            assert 0.015 <= sparse.mean() <= 0.04 and not sparse[:240].any(), (agent.name, stamp, k)
            depth = np.load(agent / f"{stamp}_depth{k}.npy").astype(np.float64)
            diff, n_in, n_planar = depth_agreement(points, meta, k, depth)
            good = np.abs(diff) <= 0.02
            assert n_planar >= 0.6 * n_in and good.sum() >= 0.8 * n_planar
            assert (diff > 0.02).sum() <= 0.003 * n_planar


def test_default_command_finishes_well_under_a_minute(tmp_path):
    start = time.perf_counter()
    summary = generate(tmp_path, scenarios=1, agents=3, frames=4, image_size=(800, 600), progress=False)
    assert time.perf_counter() - start < 60.0
    assert summary["images"] == 48 and 0.015 <= summary["sparse_coverage"][1]
