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


def test_ddp_two_processes_match_one_process_with_the_global_batch(synth_tree, tmp_path):
    # AdamW turns float rounding in a gradient component that is ~0 (e.g. a quaternion bias) into a +-lr step; a
    # larger eps keeps such components linear in their gradient, so the comparison below tests DDP, not Adam's sign.
    common = ["experiment=stage1", "trainer.max_steps=3", "trainer.device=cpu", "trainer.eps=1e-6"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                    str(29500 + os.getpid() % 1000), "-m", "coopmap", "train", f"data.root={synth_tree}",
                    f"out_dir={tmp_path / 'ddp'}", *FAST, *common, "data.batch_size=1"],
                   check=True, capture_output=True, env=env)
    subprocess.run(_cli(synth_tree, tmp_path / "one", *common, "data.batch_size=2"), check=True, capture_output=True,
                   env=env)
    check = json.loads((tmp_path / "ddp" / "ddp_check.json").read_text())
    assert check["world_size"] == 2 and check["max_abs_param_diff_across_ranks"] == 0.0
    ddp, one = load_checkpoint(tmp_path / "ddp" / "last.pt"), load_checkpoint(tmp_path / "one" / "last.pt")
    assert ddp["step"] == one["step"] == 3
    for name, value in one["model"].items():
        diff = (ddp["model"][name] - value).abs().max().item()
        assert diff <= 1e-5, f"{name}: max abs diff {diff:.3g} between DDP and one process"


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
