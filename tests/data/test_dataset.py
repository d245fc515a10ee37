"""Dataset, collate and bucketing."""

import pytest
import torch

from coopmap.config import compose
from coopmap.data.dataset import BucketBatchSampler, ViewsDataset, collate_views, make_loader


def _fake_sample(v, n_boxes, tag):
    return [{"img": torch.full((3, 2, 2), float(tag)), "data_norm_type": "dinov2", "instance": f"s{tag}/{i}",
             "boxes_pose": torch.eye(4).repeat(n_boxes, 1, 1) * 2, "boxes_half_extent": torch.ones(n_boxes, 3),
             "boxes_id": torch.arange(n_boxes), "boxes_count": torch.tensor(n_boxes)} for i in range(v)]


def test_collate_stacks_lists_strings_and_pads_boxes():
    batch = collate_views([_fake_sample(4, 2, 0), _fake_sample(4, 5, 1)])
    assert len(batch) == 4
    view = batch[1]
    assert view["img"].shape == (2, 3, 2, 2) and view["img"][1].eq(1).all()
    assert view["data_norm_type"] == ["dinov2", "dinov2"] and view["instance"] == ["s0/1", "s1/1"]
    assert view["boxes_pose"].shape == (2, 5, 4, 4) and view["boxes_count"].tolist() == [2, 5]
    assert view["boxes_id"][0].tolist() == [0, 1, -1, -1, -1]
    assert torch.equal(view["boxes_pose"][0, 3], torch.eye(4)) and view["boxes_half_extent"][0, 2:].eq(0).all()


def test_collate_refuses_mixed_view_counts():
    with pytest.raises(ValueError, match="different numbers of views"):
        collate_views([_fake_sample(4, 1, 0), _fake_sample(8, 1, 1)])


def test_bucket_sampler_groups_equal_view_counts_deterministically():
    n_views = [4, 8, 4, 12, 8, 4, 4, 8, 12, 4]
    sampler = BucketBatchSampler(n_views, batch_size=2, shuffle=True, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert all(len({n_views[i] for i in b}) == 1 for b in batches)
    assert batches == list(BucketBatchSampler(n_views, 2, True, 3))
    sampler.set_epoch(1)
    assert list(sampler) != batches and len(sampler) == len(batches)
    ordered = list(BucketBatchSampler(n_views, 2, shuffle=False))
    assert ordered[0] == [0, 2]
    full = list(BucketBatchSampler(n_views, 2, shuffle=False, drop_last=True))
    assert all(len(b) == 2 for b in full)
    ranks = [list(BucketBatchSampler(n_views, 2, True, 3, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) and {i for r in ranks for b in r for i in b} == set(range(10))


def test_loader_on_the_shared_tree_from_a_composed_config(synth_tree):
    cfg = compose("teacher_cache", [f"data.root={synth_tree}", "data.resolution=[112,84]", "data.mode=mixed",
                                    "data.batch_size=2", "data.cache_index=false"])
    ds = ViewsDataset(cfg.data)
    assert len(ds) == 6 and {r.n_views for r in ds.keys} == {4, 12}
    loader = make_loader(cfg.data, shuffle=False, dataset=ds)
    batch = next(iter(loader))
    assert isinstance(batch, list) and len(batch) in (4, 12)
    assert batch[0]["img"].shape == (2, 3, 84, 112) and batch[0]["data_norm_type"] == ["dinov2"] * 2
    assert batch[0]["camera_pose"].shape == (2, 4, 4) and batch[0]["is_metric_scale"].all()
    test_split = ViewsDataset(cfg.data, split="test")
    assert test_split.keys[0].scenario != ds.keys[0].scenario


def test_loading_workers_run_one_blas_thread(synth_tree):
    """Each worker limits numpy's BLAS pool to one thread (spinning pool threads would double its CPU time)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from coopmap.data.dataset import init_loader_worker

    blas = [m for m in threadpool_info() if m["user_api"] == "blas"]
    assert blas, "numpy loaded no BLAS library that threadpoolctl can see"
    with threadpool_limits(limits=None):  # restores the pools after the block
        init_loader_worker(0)
        assert all(m["num_threads"] == 1 for m in threadpool_info() if m["user_api"] == "blas")
    cfg = compose("teacher_cache", [f"data.root={synth_tree}", "data.resolution=[112,84]", "data.cache_index=false"])
    ds = ViewsDataset(cfg.data)
    assert make_loader(cfg.data, dataset=ds, num_workers=1).loader.worker_init_fn is init_loader_worker
    assert make_loader(cfg.data, dataset=ds, num_workers=0).loader.worker_init_fn is None
