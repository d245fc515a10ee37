"""Interruptions: training and evaluation killed (SIGKILL) at random moments, several times, then resumed.

After every kill nothing half-written may be read: ``last.pt`` loads with ``weights_only=True``, every CSV line but
possibly a partial last one is a whole row, every saved ``.npz`` loads; temp files of an interrupted atomic write
may remain but are never read and are removed by the next run. The resumed training ends with the parameters of an
uninterrupted run, the resumed evaluation with its exact CSV. The fast variants (default suite) simulate the worst
moment of a kill in process (a partial last CSV line, stale temp files); the slow ones really kill subprocesses.
"""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from coopmap.config import compose
from coopmap.csvio import AppendCsv
from coopmap.evaluation.outputs import COLUMNS
from coopmap.evaluation.runner import evaluate
from coopmap.train.checkpoint import atomic_torch_save, load_checkpoint
from coopmap.train.loop import train

RES = "data.resolution=[56,42]"
SMALL_MODEL = ["model.embed_dim=32", "model.num_heads=2", "model.depth=2"]


# --- invariants after a kill ---------------------------------------------------------------------------------------

def assert_csv_whole(path: Path, n_columns: int | None = None) -> int:
    """Every line of the CSV but possibly the last (unterminated) one is a whole row; returns the row count."""
    if not path.exists():
        return 0
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(complete)))
    if not rows:
        return 0
    width = n_columns or len(rows[0])
    assert all(len(r) == width for r in rows), f"{path}: a row of the wrong width: half-written?"
    return len(rows) - 1


def assert_checkpoint_readable(run: Path) -> int | None:
    """last.pt (if any) loads with weights_only=True; returns its step."""
    if not (run / "last.pt").exists():
        return None
    return int(load_checkpoint(run / "last.pt")["step"])


def assert_points_readable(out: Path) -> int:
    files = sorted((out / "points").rglob("*.npz")) if (out / "points").exists() else []
    for f in files:
        assert not f.name.startswith("."), f"a temp file looks like an output: {f}"
        with np.load(f, allow_pickle=False) as d:
            assert d["pred_points"].shape[-1] == 3
    return len(files)


def _stale(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp")]


def _max_param_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


# --- fast variants (default suite) --------------------------------------------------------------------------------

def _train_cfg(root, out, *extra):
    return compose("train", [f"data.root={root}", "data.split=test", f"out_dir={out}", RES, *SMALL_MODEL,
                             "trainer.progress=false", "trainer.warmup_steps=2", "trainer.lr=1e-3", *extra])


def test_training_resumes_identically_after_a_kill_during_a_save_and_a_log_write(pristine, tmp_path):
    common = ["trainer.max_steps=4", "trainer.save_every=2"]
    train(_train_cfg(pristine, tmp_path / "full", *common))
    killed = tmp_path / "killed"
    train(_train_cfg(pristine, killed, "trainer.max_steps=2", *common[1:]))  # as if killed just after step 2
    assert load_checkpoint(killed / "last.pt")["step"] == 2
    # the kill hit while step 3's log row was half out and a checkpoint was being written
    (killed / ".last.pt.k1ll3d.tmp").write_bytes(b"PK\x03\x04 half a zip")
    with open(killed / "train_log.csv", "a") as f:
        f.write("3,0.00")
    train(_train_cfg(pristine, killed, *common))
    full, resumed = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(killed / "last.pt")
    assert resumed["step"] == 4 and _max_param_diff(full["model"], resumed["model"]) <= 1e-6
    assert [int(r["step"]) for r in AppendCsv(killed / "train_log.csv").rows()] == [1, 2, 3, 4]
    assert assert_csv_whole(killed / "train_log.csv") == 4 and not _stale(killed)


def _eval_cfg(root, out, *extra):
    return compose("eval", [f"data.root={root}", "data.split=test", "model=oracle", RES, f"out_dir={out}",
                            "eval.progress=false", "eval.save_points=true", *extra])


def test_evaluation_resumes_to_the_same_csv_after_a_kill_mid_row(pristine, tmp_path):
    evaluate(_eval_cfg(pristine, tmp_path / "full"))
    expected = (tmp_path / "full" / "coop_metrics.csv").read_text()
    lines = expected.splitlines(keepends=True)
    assert len(lines) == 5  # header + 2 frames x (single, coop)
    out = tmp_path / "killed"
    (out / "points" / "single").mkdir(parents=True)
    for f in (tmp_path / "full" / "points" / "single").glob("*.npz"):  # the two single-mode rows' clouds
        (out / "points" / "single" / f.name).write_bytes(f.read_bytes())
    # killed while writing the third row, a saved cloud and summary.json: a partial line and two temp files
    (out / "coop_metrics.csv").write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    (out / "points" / "single" / ".scenario_000001_1.npz.x1y2.tmp").write_bytes(b"PK\x03\x04")
    (out / ".summary.json.a1b2.tmp").write_text('{"single": {"n_ok"')
    assert assert_csv_whole(out / "coop_metrics.csv", len(COLUMNS)) == 2
    result = evaluate(_eval_cfg(pristine, out))
    assert (out / "coop_metrics.csv").read_text() == expected
    assert result["rows"] == 4 and not _stale(out) and assert_points_readable(out) == 4


def test_an_append_after_a_partial_line_starts_a_new_row(tmp_path):
    log = AppendCsv(tmp_path / "log.csv", ["step", "loss"])
    log.append({"step": 1, "loss": 0.5})
    with open(tmp_path / "log.csv", "a") as f:
        f.write("2")  # one field of a row: glued to the next row it would read as a valid (wrong) row
    AppendCsv(tmp_path / "log.csv", ["step", "loss"]).append({"step": 2, "loss": 0.25})
    assert (tmp_path / "log.csv").read_text() == "step,loss\n1,0.5\n2,0.25\n"


# --- slow variants: real SIGKILLs at random moments ---------------------------------------------------------------

def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "coopmap", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait_rows(proc, path: Path, rows: int, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and len(AppendCsv(path).rows()) >= rows:
            return
        time.sleep(0.01)


@pytest.mark.slow
def test_training_killed_three_times_at_random_steps_resumes_to_identical_parameters(pristine, tmp_path, capsys):
    total, save_every = 30, 4
    argv = lambda out: ["train", f"data.root={pristine}", "data.split=test", f"out_dir={out}", RES, *SMALL_MODEL,  # noqa: E731
                        "trainer.progress=false", "trainer.warmup_steps=2", "trainer.lr=1e-3",
                        f"trainer.max_steps={total}", f"trainer.save_every={save_every}"]
    subprocess.run([sys.executable, "-m", "coopmap", *argv(tmp_path / "full")], check=True, capture_output=True)
    run, rng, kills = tmp_path / "killed", random.Random(11), []
    for _ in range(3):
        resumed_from = assert_checkpoint_readable(run) or 0
        target = rng.randint(resumed_from + 1, total - 3)
        proc = _start(argv(run))
        _wait_rows(proc, run / "train_log.csv", target)
        time.sleep(rng.uniform(0.0, 0.4))  # anywhere in the next step: forward, backward, a save, a log write
        assert proc.poll() is None, "the run finished before the kill"
        _kill(proc)
        logged = assert_csv_whole(run / "train_log.csv")
        kills.append({"resumed_from": resumed_from, "killed_after_step": logged,
                      "checkpoint_step": assert_checkpoint_readable(run), "stale_temp_files": len(_stale(run))})
        assert kills[-1]["checkpoint_step"] % save_every == 0
    subprocess.run([sys.executable, "-m", "coopmap", *argv(run)], check=True, capture_output=True)
    full, resumed = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(run / "last.pt")
    diff = _max_param_diff(full["model"], resumed["model"])
    with capsys.disabled():
        print(f"\ntrain kills: {kills}; max |param diff| vs uninterrupted: {diff:.3g}")
    assert resumed["step"] == total and diff <= 1e-6
    assert [int(r["step"]) for r in AppendCsv(run / "train_log.csv").rows()] == list(range(1, total + 1))
    assert not _stale(run)


@pytest.fixture(scope="module")
def eval_tree(tmp_path_factory):
    from coopmap.synth import generate

    root = tmp_path_factory.mktemp("eval_tree")
    generate(root, split="test", scenarios=1, agents=2, frames=8, seed=3, image_size=(200, 150),
             pcd_format="binary", progress=False)
    return root


@pytest.mark.slow
def test_evaluation_killed_three_times_at_random_frames_ends_with_the_same_csv(eval_tree, tmp_path, capsys):
    argv = lambda out: ["eval", f"data.root={eval_tree}", "data.split=test", "model=oracle", RES,  # noqa: E731
                        f"out_dir={out}", "eval.progress=false", "eval.save_points=true"]
    subprocess.run([sys.executable, "-m", "coopmap", *argv(tmp_path / "full")], check=True, capture_output=True)
    expected = (tmp_path / "full" / "coop_metrics.csv").read_text()
    total = expected.count("\n") - 1
    out, rng, kills = tmp_path / "killed", random.Random(5), []
    for _ in range(3):
        done = assert_csv_whole(out / "coop_metrics.csv", len(COLUMNS))
        target = rng.randint(done + 1, min(done + 4, total - 1))
        proc = _start(argv(out))
        _wait_rows(proc, out / "coop_metrics.csv", target)
        time.sleep(rng.uniform(0.0, 0.3))
        assert proc.poll() is None, "the evaluation finished before the kill"
        _kill(proc)
        kills.append({"rows_before": done, "rows_after_kill": assert_csv_whole(out / "coop_metrics.csv", len(COLUMNS)),
                      "npz_readable": assert_points_readable(out), "stale_temp_files": len(_stale(out))})
    subprocess.run([sys.executable, "-m", "coopmap", *argv(out)], check=True, capture_output=True)
    with capsys.disabled():
        print(f"\neval kills ({total} rows): {kills}")
    assert (out / "coop_metrics.csv").read_text() == expected
    assert not _stale(out) and assert_points_readable(out) == total
    for f in sorted((tmp_path / "full" / "points").rglob("*.npz")):
        with np.load(f) as a, np.load(out / f.relative_to(tmp_path / "full")) as b:
            assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert torch.__version__  # the same interpreter ran both


def test_atomic_checkpoint_save_leaves_the_previous_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"step": 1}, path)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1 and not list(tmp_path.glob(".*.tmp"))
