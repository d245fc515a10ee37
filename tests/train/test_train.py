"""Training end to end on a synthetic tree: loss goes down, resume after SIGKILL, DDP, guards, clear errors."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from coopmap.config import compose
from coopmap.errors import ConfigError
from coopmap.models.factory import build_model
from coopmap.train.checkpoint import atomic_torch_save, load_checkpoint
from coopmap.train.loop import TrainingDiverged, train

FAST = ["data.resolution=[56,42]", "trainer.progress=false", "trainer.warmup_steps=3", "trainer.lr=1e-3"]


def _cfg(root, out, *overrides):
    return compose("train", [f"data.root={root}", f"out_dir={out}", *FAST, *overrides])


def _losses(run_dir):
    with open(run_dir / "train_log.csv") as f:
        return [float(r["loss/total"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def teacher_ckpt(synth_tree, tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    atomic_torch_save({"model": build_model(_cfg(synth_tree, "/unused").model).state_dict()}, path)
    return path


@pytest.mark.parametrize("preset", ["stage1", "stage2_full"])
def test_thirty_cpu_steps_lower_the_loss(synth_tree, tmp_path, teacher_ckpt, preset):
    cfg = _cfg(synth_tree, tmp_path, f"experiment={preset}", "trainer.max_steps=30",
               f"distill.teacher_checkpoint={teacher_ckpt}")
    result = train(cfg)
    losses = _losses(tmp_path)
    assert result["steps"] == 30 and len(losses) == 30 and result["nonfinite_skipped"] == 0
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck["step"] == 30 and ck["config"]["name"] == preset
    assert (tmp_path / "config.yaml").exists() and any((tmp_path / "tb").iterdir())
    with open(tmp_path / "train_log.csv") as f:
        header = next(csv.reader(f))
    assert {"lr", "grad_norm", "step_time", "scale_err", "pose_abs_t", "loss/total"} <= set(header)
    if preset == "stage2_full":
        assert {"distill/scale", "coop/pose_t", "height/penalty", "depth/main"} <= set(header)


def _cli(root, out, *overrides):
    return [sys.executable, "-m", "coopmap", "train", f"data.root={root}", f"out_dir={out}", *FAST, *overrides]


def test_killed_run_resumes_to_identical_parameters(synth_tree, tmp_path):
    common = ["experiment=stage2_mask", "trainer.max_steps=20", "trainer.save_every=10"]
    subprocess.run(_cli(synth_tree, tmp_path / "full", *common), check=True, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(synth_tree, out, *common), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (out / "last.pt").exists():
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(out / "last.pt")["step"] == 10  # killed between step 10 and 20
    subprocess.run(_cli(synth_tree, out, *common), check=True, capture_output=True)
    full, resumed = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(out / "last.pt")
    assert resumed["step"] == 20
    for name, value in full["model"].items():
        torch.testing.assert_close(resumed["model"][name], value, atol=1e-6, rtol=0, msg=name)
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "train_log.csv"))]
    assert steps == list(range(1, 21))  # each step logged exactly once


def _torchrun(root, out, *overrides, env):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(29500 + (os.getpid() + len(str(out))) % 1000), "-m", "coopmap", "train",
                           f"data.root={root}", f"out_dir={out}", *FAST, *overrides, "data.batch_size=1"],
                          check=True, capture_output=True, env=env)


#: One plain SGD step of lr 1 from the same initial weights: the update is exactly minus the averaged gradient.
SGD_STEP = ["experiment=stage1", "trainer.device=cpu", "trainer.optimizer=sgd", "trainer.max_steps=1",
            "trainer.warmup_steps=0", "trainer.weight_decay=0", "trainer.grad_clip=0"]
#: Bound on |DDP update - one-process update| per tensor, relative to that tensor's largest update, plus a floor
#: relative to the largest update of the whole model (for tensors whose gradient cancels to ~0). The two runs
#: differ only in the order of float32 sums (a batch of 2 in one backward vs two batches of 1 averaged by the
#: all-reduce), so each gradient component carries an error of a few float32 ulps (6e-8) of the summed terms'
#: magnitude: 1e-4 is > 1000 ulps, yet a factor-2 DDP fault (sum instead of mean, a rank's batch dropped)
#: moves the update by ~50-100 % of its size.
DDP_RTOL, DDP_GLOBAL_ATOL = 1e-4, 1e-6


def ddp_update_mismatch(init: dict, ddp: dict, one: dict) -> dict[str, float]:
    """Per parameter tensor, max |u_ddp - u_one| / (DDP_RTOL * max |u_one| + DDP_GLOBAL_ATOL * max_all |u_one|)
    with u = weights after the step - initial weights; a value > 1 fails."""
    updates = {n: (one[n] - init[n]).double() for n in init}
    scale_all = max(u.abs().max().item() for u in updates.values())
    return {n: ((ddp[n] - init[n]).double() - u).abs().max().item()
            / (DDP_RTOL * u.abs().max().item() + DDP_GLOBAL_ATOL * scale_all) for n, u in updates.items()}


def test_ddp_two_ranks_take_the_sgd_step_of_one_process_with_the_global_batch(synth_tree, tmp_path):
    # What DDP must do: 2 ranks with a batch of 1 each apply the gradient averaged over both samples, i.e. the
    # update of 1 process with the batch of 2. Plain SGD makes the update linear in that gradient (AdamW's first
    # step is ~ lr * sign(g): float noise in a ~0 component becomes a +-lr step, which tests the CPU, not DDP).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    _torchrun(synth_tree, tmp_path / "ddp", *SGD_STEP, "trainer.lr=1.0", env=env)
    for name, lr in (("one", "1.0"), ("init", "0.0")):  # lr 0: the initial weights, through the same code path
        subprocess.run(_cli(synth_tree, tmp_path / name, *SGD_STEP, f"trainer.lr={lr}", "data.batch_size=2"),
                       check=True, capture_output=True, env=env)
    check = json.loads((tmp_path / "ddp" / "ddp_check.json").read_text())
    assert check["world_size"] == 2 and check["max_abs_param_diff_across_ranks"] == 0.0
    init, ddp, one = (load_checkpoint(tmp_path / n / "last.pt")["model"] for n in ("init", "ddp", "one"))
    moved = sum(int((one[n] != init[n]).any()) for n in init)
    assert moved >= 0.9 * len(init), f"only {moved} of {len(init)} tensors moved: the comparison would be empty"
    ratios = ddp_update_mismatch(init, ddp, one)
    worst = max(ratios, key=ratios.get)
    print(f"worst DDP/one-process update mismatch: {worst} at {ratios[worst]:.3g} of the bound")
    assert ratios[worst] <= 1.0, f"{worst}: DDP update differs from one process by {ratios[worst]:.3g}x the bound"


def test_ddp_ranks_stay_bitwise_identical_under_adamw(synth_tree, tmp_path):
    # The all-reduce gives every rank the same gradient bits, so AdamW keeps the replicas exactly equal.
    _torchrun(synth_tree, tmp_path, "experiment=stage1", "trainer.max_steps=3", "trainer.device=cpu",
              env={**os.environ, "OMP_NUM_THREADS": "1"})
    check = json.loads((tmp_path / "ddp_check.json").read_text())
    assert check["world_size"] == 2 and check["max_abs_param_diff_across_ranks"] == 0.0
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3


def test_distillation_without_teacher_fails_clearly(synth_tree, tmp_path):
    with pytest.raises(ConfigError, match="distill.teacher_checkpoint"):
        train(_cfg(synth_tree, tmp_path, "experiment=stage2_mask_distill", "trainer.max_steps=1"))


def test_misspelt_override_fails_with_the_key_on_one_line(synth_tree, tmp_path):
    proc = subprocess.run(_cli(synth_tree, tmp_path, "trainer.max_stpes=3"), capture_output=True, text=True)
    assert proc.returncode == 2
    assert "trainer.max_stpes" in proc.stderr and "Traceback" not in proc.stderr


def test_non_finite_losses_stop_the_run_naming_step_and_terms(synth_tree, tmp_path):
    cfg = _cfg(synth_tree, tmp_path, "experiment=stage1", "trainer.max_steps=20", "trainer.lr=1e30",
               "trainer.grad_clip=0", "trainer.warmup_steps=0", "trainer.max_nonfinite=2")
    with pytest.raises(TrainingDiverged, match=r"2 non-finite losses in a row at step \d+ \(terms: .+\)"):
        train(cfg)
    dump = json.loads((tmp_path / "nonfinite_batch.json").read_text())
    assert dump["instances"] and dump["terms"]
