"""Resource limits: the memory bound of a frame's metrics, and data loader workers that fail or die.

Memory bounds (docs/metrics.md, docs/reliability.md), as peak resident memory above the inputs in a fresh process:
``chamfer_fscore``: 1.2 x (30 B x (N + M) + 64 B x chunk); ``frame_metrics``: 100 B x predicted pixels + 32 MiB. The fast
test checks them at ~0.5 M points, the slow one at 5 M (the 2-core machine's measurements are in the docs).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from coopmap.cli import main as cli_main
from coopmap.config import compose
from coopmap.csvio import AppendCsv
from coopmap.data import dataset as dataset_module
from coopmap.data.dataset import ViewsDataset, make_loader
from coopmap.errors import DataError
from coopmap.metrics.pointcloud import DEFAULT_CHUNK

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
MiB = 2**20


def chamfer_bound(n: int, m: int, chunk: int = DEFAULT_CHUNK) -> float:
    """docs/metrics.md's estimate (30 B per point plus 64 B per query of a chunk) with a 20 % margin."""
    return 1.2 * (30.0 * (n + m) + 64.0 * chunk)


def frame_bound(pixels: int) -> float:
    return 100.0 * pixels + 32 * MiB


def _measure(n_pred: int, n_gt: int, H: int, W: int) -> dict:
    """Peak RSS above the inputs of chamfer_fscore(n_pred, n_gt) and of frame_metrics on 8 views of H x W, in one
    fresh process (the benchmark's helpers: benchmarks/bench_chamfer.py)."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import bench_chamfer as b; "
            f"print(json.dumps([b.memory_child({n_pred}, {n_gt}, {DEFAULT_CHUNK}), b.frame_memory_child({H}, {W})]))")
    res = subprocess.run([sys.executable, "-c", code, str(BENCH)], capture_output=True, text=True, check=True,
                         timeout=1200)
    chamfer, frame = json.loads(res.stdout.strip().splitlines()[-1])
    return {"chamfer_mb": chamfer["peak_rss_above_inputs_mb"], "chamfer_bound_mb": chamfer_bound(n_pred, n_gt) / MiB,
            "frame_mb": frame["peak_rss_above_inputs_mb"], "frame_pixels": frame["pixels"],
            "frame_bound_mb": frame_bound(frame["pixels"]) / MiB}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS through /proc (Linux)")
def test_metrics_memory_stays_under_the_bound_at_half_a_million_points(capsys):
    r = _measure(500_000, 30_000, 228, 304)  # 8 x 304 x 228 = 554k predicted pixels
    with capsys.disabled():
        print(f"\nmemory at 0.5M: {r}")
    assert r["chamfer_mb"] <= r["chamfer_bound_mb"] and r["frame_mb"] <= r["frame_bound_mb"], r


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS through /proc (Linux)")
def test_metrics_memory_stays_under_the_bound_at_five_million_points(capsys):
    r = _measure(5_000_000, 300_000, 720, 968)  # 8 x 968 x 720 = 5.58M predicted pixels
    with capsys.disabled():
        print(f"\nmemory at 5M: {r}")
    assert r["chamfer_mb"] <= r["chamfer_bound_mb"] and r["frame_mb"] <= r["frame_bound_mb"], r


# --- data loader workers ------------------------------------------------------------------------------------------

def _patch_build_views(monkeypatch, timestamp: str, action: str) -> None:
    """Make loading the samples of ``timestamp`` raise (``raise``) or kill the loading process (``die``)."""
    real = dataset_module.build_views

    def patched(scen, key, opts, idx=0):
        if key.timestamp == timestamp:
            if action == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            raise ZeroDivisionError("float division by zero in a reader")
        return real(scen, key, opts, idx)

    monkeypatch.setattr(dataset_module, "build_views", patched)


def _first_stamp(root: Path) -> str:
    scen = next((root / "test").iterdir())
    agent = sorted(p for p in scen.iterdir() if p.is_dir())[0]
    return sorted(p.stem for p in agent.glob("*.yaml"))[0]


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        rc = cli_main(argv)
    return rc, err.getvalue()


TRAIN = ["data.split=test", "data.resolution=[56,42]", "model.embed_dim=32", "model.num_heads=2", "model.depth=2",
         "trainer.max_steps=2", "trainer.progress=false", "trainer.warmup_steps=0", "data.num_workers=1"]


def test_an_exception_in_a_training_worker_skips_the_sample_and_records_its_identifiers(pristine, tmp_path,
                                                                                        monkeypatch):
    stamp = _first_stamp(pristine)
    _patch_build_views(monkeypatch, stamp, "raise")
    rc, err = _cli(["train", f"data.root={pristine}", f"out_dir={tmp_path}", *TRAIN])
    assert rc == 0 and "Traceback" not in err
    (row, *_) = AppendCsv(tmp_path / "skipped_samples.csv").rows()
    assert row["timestamp"] == stamp and row["scenario"] and row["ego_id"]
    assert "ZeroDivisionError: float division by zero" in row["reason"] and f"/{stamp} ego {row['ego_id']}" in \
        row["reason"]
    assert f"coopmap train: skipped sample {row['scenario']}/{stamp} ego {row['ego_id']}" in err


def test_a_training_worker_that_dies_is_reported_with_the_samples_it_held(pristine, tmp_path, monkeypatch):
    stamp = _first_stamp(pristine)
    _patch_build_views(monkeypatch, stamp, "die")
    rc, err = _cli(["train", f"data.root={pristine}", f"out_dir={tmp_path}", *TRAIN])
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"coopmap train: error: {pristine}/test: a data loader worker died")
    assert f"/{stamp} ego " in lines[0] and "data.num_workers=0" in lines[0]


def test_an_evaluation_worker_that_dies_is_reported_with_the_frames_it_held(pristine, tmp_path, monkeypatch):
    stamp = _first_stamp(pristine)
    _patch_build_views(monkeypatch, stamp, "die")
    rc, err = _cli(["eval", f"data.root={pristine}", "data.split=test", "model=oracle", "data.resolution=[56,42]",
                    f"out_dir={tmp_path}", "eval.progress=false", "eval.workers=1", "eval.modes=[single]"])
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "a data loader worker died" in lines[0] and f"/{stamp} ego " in lines[0]


def test_an_exception_in_an_evaluation_worker_is_a_skipped_row(pristine, tmp_path, monkeypatch):
    stamp = _first_stamp(pristine)
    _patch_build_views(monkeypatch, stamp, "raise")
    rc, _ = _cli(["eval", f"data.root={pristine}", "data.split=test", "model=oracle", "data.resolution=[56,42]",
                  f"out_dir={tmp_path}", "eval.progress=false", "eval.workers=1", "eval.modes=[single]"])
    rows = AppendCsv(tmp_path / "coop_metrics.csv").rows()
    assert rc == 0 and [r["status"] == "ok" for r in rows] == [r["timestamp"] != stamp for r in rows]
    bad = next(r for r in rows if r["timestamp"] == stamp)
    assert "ZeroDivisionError" in bad["status"] and f"/{stamp} ego {bad['ego_id']}" in bad["status"]


@pytest.mark.parametrize("action", ["raise", "die"])
def test_make_loader_stops_with_one_data_error_naming_the_sample(pristine, monkeypatch, action):
    stamp = _first_stamp(pristine)
    cfg = compose("teacher_cache", [f"data.root={pristine}", "data.split=test", "data.resolution=[56,42]",
                                    "data.num_workers=1"])
    ds = ViewsDataset(cfg.data)
    _patch_build_views(monkeypatch, stamp, action)
    with pytest.raises(DataError) as err:
        list(make_loader(cfg.data, shuffle=False, dataset=ds))
    assert f"/{stamp} ego " in str(err.value)
    assert ("ZeroDivisionError" if action == "raise" else "a data loader worker died") in str(err.value)
