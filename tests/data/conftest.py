"""Fixtures of the data tests.

- every test gets ``COOPMAP_CACHE_DIR`` pointing at a temporary folder, so index caches never land in a shared
  fixture tree or in ``~/.cache``;
- ``clean_tree``: our own small synthetic tree *without* LiDAR noise at 400x300 (1 scenario, 3 CAVs, 1 frame),
  for the tests that check geometry to centimetres;
- ``clean_views`` / ``clean_views_fused``: its coop sample at 392x294 with own / fused LiDAR depth (built once);
- ``make_stub_tree``: writes hand-made trees of stub files (yaml with poses, empty pcd/png) for index tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coopmap.data.config import DataConfig

CLEAN_RES = (392, 294)


@pytest.fixture(autouse=True)
def _index_cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("COOPMAP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "index_cache"))


@pytest.fixture(scope="session")
def clean_tree(tmp_path_factory) -> Path:
    from coopmap.synth import generate

    root = tmp_path_factory.mktemp("clean_tree")
    generate(root, split="train", scenarios=1, agents=3, frames=1, seed=1, image_size=(400, 300),
             lidar_noise=False, progress=False)
    return root


def data_cfg(root, **over) -> DataConfig:
    cfg = DataConfig(root=str(root), resolution=list(CLEAN_RES), patch_size=14, cache_index=False)
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture
def make_cfg():
    """``make_cfg(root, **overrides)`` -> a DataConfig at CLEAN_RES without index cache."""
    return data_cfg


@pytest.fixture(scope="session")
def clean_views(clean_tree):
    from coopmap.data.dataset import ViewsDataset

    return ViewsDataset(data_cfg(clean_tree))[0]


@pytest.fixture(scope="session")
def clean_views_fused(clean_tree):
    from coopmap.data.dataset import ViewsDataset

    return ViewsDataset(data_cfg(clean_tree, depth_source="fused"))[0]


def write_stub_agent(folder: Path, timestamps, pose_of=None, cameras=(0, 1, 2, 3)) -> None:
    """Stub frames: a yaml holding only lidar_pose (from ``pose_of(ts)``), empty .pcd and camera pngs."""
    folder.mkdir(parents=True, exist_ok=True)
    for ts in timestamps:
        x, y = pose_of(ts) if pose_of else (0.0, 0.0)
        (folder / f"{ts}.yaml").write_text(f"lidar_pose:\n- {x}\n- {y}\n- 1.9\n- 0.0\n- 0.0\n- 0.0\n")
        (folder / f"{ts}.pcd").write_bytes(b"")
        for k in cameras:
            (folder / f"{ts}_camera{k}.png").write_bytes(b"")


@pytest.fixture
def stub_agent_writer():
    return write_stub_agent


@pytest.fixture
def make_stub_tree(tmp_path):
    def make(layout: dict) -> Path:
        """layout: {split: {scenario: {agent_id: (timestamps, (x, y))}}}."""
        root = tmp_path / "opv2v"
        for split, scens in layout.items():
            (root / split).mkdir(parents=True, exist_ok=True)
            for scen, agents in scens.items():
                (root / split / scen).mkdir(parents=True, exist_ok=True)
                for agent, (stamps, xy) in agents.items():
                    write_stub_agent(root / split / scen / str(agent), stamps, lambda ts, xy=xy: xy)
        return root

    return make
