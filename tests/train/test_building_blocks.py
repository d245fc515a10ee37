"""Optimizer groups, schedule, atomic checkpoints, resumable sampling and the CSV log."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from coopmap.errors import CheckpointError, ConfigError
from coopmap.train.checkpoint import atomic_torch_save, load_checkpoint, rng_state, set_rng_state
from coopmap.train.config import TrainerConfig
from coopmap.train.logs import CsvLog
from coopmap.train.optim import build_optimizer, lr_factor, param_groups
from coopmap.train.sampling import ResumableBatchSampler


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
        self.head = nn.Linear(8, 2)


def test_param_groups_no_decay_on_bias_and_norm_and_per_module_lr():
    net = _Net()
    groups = param_groups(net, TrainerConfig(lr=1e-3, weight_decay=0.1, lr_per_module={"encoder": 0.1}))
    by_name = {g["name"]: g for g in groups}
    assert by_name["lr0.1_decay"]["params"] == [net.encoder[0].weight]
    assert {id(p) for p in by_name["lr0.1_no_decay"]["params"]} == {
        id(net.encoder[0].bias), id(net.encoder[1].weight), id(net.encoder[1].bias)}
    assert by_name["lr0.1_decay"]["lr"] == pytest.approx(1e-4)
    assert by_name["lr1_no_decay"]["weight_decay"] == 0.0 and by_name["lr1_decay"]["weight_decay"] == 0.1


def test_lr_zero_freezes_and_unknown_module_is_named():
    net = _Net()
    opt = build_optimizer(net, TrainerConfig(lr_per_module={"encoder": 0.0}))
    assert not any(p.requires_grad for p in net.encoder.parameters())
    assert sum(len(g["params"]) for g in opt.param_groups) == 2
    with pytest.raises(ConfigError, match="decoder"):
        param_groups(_Net(), TrainerConfig(lr_per_module={"decoder": 0.5}))


def test_sgd_step_is_minus_lr_times_the_gradient_and_unknown_optimizer_is_named():
    net = _Net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = build_optimizer(net, TrainerConfig(optimizer="sgd", lr=0.5, weight_decay=0.0))
    net.head(net.encoder(torch.ones(3, 4))).sum().backward()
    opt.step()
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), before[n] - 0.5 * p.grad, rtol=0, atol=1e-7, msg=n)
    with pytest.raises(ConfigError, match="trainer.optimizer.*'adam'"):
        build_optimizer(_Net(), TrainerConfig(optimizer="adam"))


def test_warmup_cosine_closed_form():
    assert lr_factor(0, 100, 9, 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 100, 9, 0.0) == pytest.approx(1.0)
    assert lr_factor(99, 100, 9, 0.01) == pytest.approx(0.01)
    mid = 9 + (99 - 9) / 2
    assert lr_factor(int(mid), 100, 9, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)), abs=1e-12)


def test_atomic_checkpoint_round_trip_and_refusals(tmp_path):
    net = _Net()
    path = tmp_path / "last.pt"
    atomic_torch_save({"model": net.state_dict(), "step": 3, "config": {"a": [1, 2]}}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind
    ck = load_checkpoint(path)
    assert ck["step"] == 3 and ck["config"] == {"a": [1, 2]}
    torch.testing.assert_close(ck["model"]["head.weight"], net.head.weight.detach())
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="trunc.pt"):
        load_checkpoint(truncated)


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_payload_is_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": _Payload()}, evil)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(evil)


def test_rng_state_round_trip(tmp_path):
    import random

    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    atomic_torch_save({"rng": state}, tmp_path / "r.pt")
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    b = (torch.rand(3), np.random.rand(3), random.random())
    torch.testing.assert_close(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]


def test_sampler_shards_equal_single_process_and_resumes():
    buckets = [4] * 10 + [8] * 7
    single = ResumableBatchSampler(buckets, batch_size=2, seed=5)
    ranks = [ResumableBatchSampler(buckets, batch_size=1, seed=5, rank=r, world_size=2) for r in range(2)]
    s_batches = list(single)
    r_batches = [list(r) for r in ranks]
    assert len(s_batches) == len(r_batches[0]) == len(r_batches[1]) == 5 + 3
    for sb, b0, b1 in zip(s_batches, *r_batches):
        assert sb == b0 + b1
        assert len({buckets[i] for i in sb}) == 1  # one bucket per batch
    resumed = ResumableBatchSampler(buckets, batch_size=2, seed=5)
    resumed.set_position(0, 3)
    assert list(resumed) == s_batches[3:]
    assert list(resumed) == s_batches  # the next pass starts at batch 0 again
    other_epoch = ResumableBatchSampler(buckets, batch_size=2, seed=5)
    other_epoch.set_position(1, 0)
    assert list(other_epoch) != s_batches


def test_csv_log_truncates_on_resume(tmp_path):
    log = CsvLog(tmp_path / "train_log.csv")
    for step in range(1, 6):
        log.write({"step": step, "loss": 1.0 / step, "note": "a,b"})
    with open(tmp_path / "train_log.csv", "a") as f:
        f.write("6,0.1")  # a partial row from a killed process
    log2 = CsvLog(tmp_path / "train_log.csv")
    log2.truncate_after(3)
    log2.write({"step": 4, "loss": 0.5, "note": "x"})
    lines = (tmp_path / "train_log.csv").read_text().splitlines()
    assert lines[0] == "step,loss,note" and lines[1].endswith("\"a,b\"")
    assert [ln.split(",")[0] for ln in lines[1:]] == ["1", "2", "3", "4"]
