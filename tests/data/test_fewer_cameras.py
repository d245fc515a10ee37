"""Agents with fewer cameras (OPV2V's 2021_09_09_13_20_58 has no camera3 images): per-agent camera lists, views of
the cameras an agent has, differing view counts bucketed and collated, reported by ``coopmap index``."""

import shutil

import numpy as np
import pytest

from coopmap.cli import main as cli_main
from coopmap.data.dataset import BucketBatchSampler, ViewsDataset, collate_views
from coopmap.data.index import build_index
from coopmap.data.samples import select_samples


@pytest.fixture
def fewer(synth_tree, tmp_path):
    """The shared tree's train split with every camera3 image of its first CAV and the camera0 images of its last
    CAV removed: cameras (0, 1, 2), (0, 1, 2, 3), (1, 2, 3)."""
    root = tmp_path / "fewer"
    shutil.copytree(synth_tree / "train", root / "train")
    scen = next((root / "train").iterdir())
    agents = sorted(p for p in scen.iterdir() if p.is_dir())
    for png in agents[0].glob("*_camera3.png"):
        png.unlink()
    for png in agents[-1].glob("*_camera0.png"):
        png.unlink()
    return root, scen, [a.name for a in agents]


def test_index_keeps_the_frames_and_records_each_agents_cameras(fewer):
    root, scen, ids = fewer
    index = build_index(root, use_cache=False, progress=False)
    assert index.problems == []
    s = index.scenarios[0]
    assert [s.agent_cameras(a) for a in ids] == [(0, 1, 2), (0, 1, 2, 3), (1, 2, 3)]
    assert len(s.timestamps) == 3 and all(len(f) == 3 for f in s.frames.values())
    coop = select_samples(index, "train", "coop", "all")
    assert {k.ego_id: k.n_views for k in coop} == {ids[0]: 10, ids[1]: 10, ids[2]: 10}
    single = select_samples(index, "train", "single", "all")
    assert [k.n_views for k in single[:3]] == [3, 4, 3]


def test_views_follow_the_camera_lists_and_differing_counts_batch(fewer, make_cfg):
    root, scen, ids = fewer
    ds = ViewsDataset(make_cfg(root, mode="mixed", ego_policy="all", resolution=[140, 112]))
    assert sorted(set(ds.n_views)) == [3, 4, 10]
    i_last = next(i for i, k in enumerate(ds.keys) if k.mode == "single" and k.ego_id == ids[-1])
    views = ds[i_last]  # an ego without camera0: the world is its camera1
    assert [int(v["camera_index"]) for v in views] == [1, 2, 3]
    np.testing.assert_allclose(views[0]["camera_pose"].numpy(), np.eye(4), atol=1e-6)
    i_coop = next(i for i, k in enumerate(ds.keys) if k.mode == "coop" and k.ego_id == ids[0])
    views = ds[i_coop]
    assert [(str(int(v["agent_id"])), int(v["camera_index"])) for v in views] == \
        [(ids[0], k) for k in (0, 1, 2)] + [(ids[1], k) for k in range(4)] + [(ids[2], k) for k in (1, 2, 3)]
    assert [int(v["agent_index"]) for v in views] == [0] * 3 + [1] * 4 + [2] * 3
    sampler = BucketBatchSampler(ds.n_views, batch_size=2, shuffle=True, seed=0)
    for batch in sampler:
        assert len({ds.n_views[i] for i in batch}) == 1
    batch = next(b for b in sampler if ds.n_views[b[0]] == 3 and len(b) == 2)
    views = collate_views([ds[i] for i in batch])
    assert len(views) == 3 and views[0]["img"].shape == (2, 3, 112, 140)


def test_cli_reports_agents_with_fewer_cameras_without_a_problem(fewer, capsys):
    root, scen, ids = fewer
    assert cli_main(["index", str(root), "--frames", "1", "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert f"train/{scen.name}/{ids[0]}: cameras 0,1,2 (no camera3 images)" in out
    assert f"train/{scen.name}/{ids[-1]}: cameras 1,2,3 (no camera0 images)" in out
    row = next(line.split() for line in out.splitlines() if line.startswith("train "))
    assert row[-1] == str(3 * (3 + 4 + 3))  # images: 3 frames x (3 + 4 + 3) cameras
    assert "problems: 0" in out
