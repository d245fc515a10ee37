"""run_filter on a hand-made eval output: rows, statuses, history, exports, resuming, bad files, ICP motion, CLI."""

import dataclasses
import shutil

import numpy as np
import pytest
from filter_scenes import ego_pose, frame_arrays, street, to_lidar

from coopmap.cli import main as coopmap_main
from coopmap.csvio import AppendCsv
from coopmap.errors import DataError
from coopmap.evaluation.outputs import points_path, save_points
from coopmap.filtering import FilterConfig, run_filter
from coopmap.filtering.export import read_kitti_bin
from coopmap.filtering.pipeline import COLUMNS
from coopmap.metrics import nn_distances

SCEN, EGO = "2021_08_23_00_42_35", "641"
TS = ["000068", "000070", "000072", "000074", "000076", "000078"]
N_FLOATERS = 100  # per frame, 1 - 3 m above the ground, anywhere over the street


def _frame(rng, i: int) -> dict:
    """The street seen from ego pose i: prediction = a sampling with 5 cm noise plus floaters; GT = another one."""
    T = ego_pose(i, speed=1.0, yaw_rate=1.0)
    world = street(rng, 40_000) + rng.normal(0, 0.05, (40_000, 3))
    floaters = np.c_[rng.uniform(-10, 40, N_FLOATERS), rng.uniform(-10, 10, N_FLOATERS),
                     rng.uniform(1.0, 3.0, N_FLOATERS)]
    pts = to_lidar(T, np.concatenate([world, floaters]))
    return frame_arrays(pts, T, gt_lidar=to_lidar(T, street(rng, 40_000)))


@pytest.fixture(scope="module")
def eval_out(tmp_path_factory):
    """Six coop frames of one sequence: 000072 skipped by eval (no npz), 000078 a corrupt npz; one single frame."""
    out = tmp_path_factory.mktemp("eval_out")
    rng = np.random.default_rng(0)
    rows = []
    for i, ts in enumerate(TS):
        key = (SCEN, ts, EGO, "coop")
        status = "skipped: eval failed on purpose" if ts == "000072" else "ok"
        rows.append({"scenario": SCEN, "timestamp": ts, "ego_id": EGO, "mode": "coop", "status": status})
        if ts == "000078":
            points_path(out, key).write_bytes(b"PK not really a zip")
        elif status == "ok":
            save_points(points_path(out, key), **_frame(rng, i))
    save_points(points_path(out, (SCEN, "000068", EGO, "single")), **_frame(rng, 0))
    AppendCsv(out / "coop_metrics.csv", ["scenario", "timestamp", "ego_id", "mode", "status"]).rewrite(rows)
    return out


CFG = FilterConfig(frames=2, min_support=3, formats=["kitti", "npz"], progress=False)


@pytest.fixture(scope="module")
def filtered(eval_out, tmp_path_factory):
    """One uninterrupted run with CFG: (its out_dir, its result)."""
    out = tmp_path_factory.mktemp("filtered")
    return out, run_filter(eval_out, out, CFG)


def test_rows_statuses_history_and_exports(filtered):
    tmp_path, result = filtered
    rows = AppendCsv(tmp_path / "filter_metrics.csv").rows()
    assert list(rows[0]) == COLUMNS
    assert [(r["mode"], r["timestamp"]) for r in rows] == [("single", "000068")] + [("coop", t) for t in TS]
    status = {r["timestamp"]: r["status"] for r in rows if r["mode"] == "coop"}
    assert status["000072"] == "skipped: eval skipped: eval failed on purpose"
    assert status["000078"].startswith("skipped: ") and "000078_641.npz: not an npz" in status["000078"]
    assert result["ok"] == 5 and result["skipped"] == 2
    # history: the K = 2 previous *available* frames within 4 K = 8 timestamp units
    hist = {r["timestamp"]: r["n_history"] for r in rows if r["mode"] == "coop" and r["status"] == "ok"}
    assert hist == {"000068": "0", "000070": "1", "000074": "2", "000076": "2"}
    for r in rows:  # (the chamfer of this sparse GT is dominated by its own sampling; see the end-to-end test)
        if r["status"] == "ok":
            assert float(r["fscore_after"]) > float(r["fscore_before"])
            assert float(r["bev_iou_after"]) > float(r["bev_iou_before"])
            assert float(r["n_points_after"]) < float(r["n_points_before"])
    pts, _ = read_kitti_bin(tmp_path / "coop" / SCEN / EGO / "000074.bin")
    with np.load(tmp_path / "coop" / SCEN / EGO / "000074.npz", allow_pickle=False) as d:
        np.testing.assert_array_equal(pts, d["points_native"])
        assert rows[4]["timestamp"] == "000074" and len(pts) == float(rows[4]["n_points_after"])
    assert set(result["summary"]) == {"single", "coop"}
    assert result["summary"]["coop"]["n_ok"] == 4


def test_support_removes_the_per_frame_floaters(eval_out, tmp_path):
    run_filter(eval_out, tmp_path, dataclasses.replace(CFG, sor_k=0, formats=["npz"]))
    with np.load(tmp_path / "coop" / SCEN / EGO / "000076.npz", allow_pickle=False) as d:
        pts = d["points_rh"]
        T = d["T_ego_from_egolidar"]
    h = pts @ T[2, :3] + T[2, 3]
    with np.load(points_path(eval_out, (SCEN, "000076", EGO, "coop")), allow_pickle=False) as d:
        floaters = d["pred_points"][-N_FLOATERS:].astype(np.float64)  # planted in this frame only
    # after voxel downsampling a kept floater is a centroid within a voxel diagonal (0.17 m) of itself
    d_min = nn_distances(floaters, pts[h > 0.9])
    assert np.mean(d_min < 0.2) < 0.05  # all but the few floaters that landed on walls or poles are gone


def test_resumed_run_gives_the_same_csv(eval_out, filtered, tmp_path):
    expected = (filtered[0] / "filter_metrics.csv").read_text()
    lines = expected.splitlines(keepends=True)
    part = tmp_path / "part"
    part.mkdir()
    # as if killed: the header, two finished rows (coop 000068 and 000074, out of order), a torn last line
    (part / "filter_metrics.csv").write_text(lines[0] + lines[2] + lines[5] + lines[6][:30])
    stale = part / "coop" / SCEN / EGO / ".000076.bin.x1y2z3.tmp"  # a write the kill interrupted
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"\0" * 7)
    result = run_filter(eval_out, part, CFG)
    assert (part / "filter_metrics.csv").read_text() == expected
    assert not stale.exists()
    assert result["rows"] == 7
    assert not (part / "coop" / SCEN / EGO / "000068.bin").exists()  # finished frames are not redone
    assert (part / "coop" / SCEN / EGO / "000076.bin").exists()


@pytest.mark.slow
def test_icp_motion_gives_nearly_the_gt_result(eval_out, tmp_path):
    base = dataclasses.replace(CFG, sor_k=0, formats=["npz"], modes=["coop"])
    run_filter(eval_out, tmp_path / "gt", base)
    run_filter(eval_out, tmp_path / "pred", dataclasses.replace(base, pose="pred", icp_iters=8))
    for ts in ("000070", "000076"):
        with np.load(tmp_path / "gt" / "coop" / SCEN / EGO / f"{ts}.npz") as a, \
                np.load(tmp_path / "pred" / "coop" / SCEN / EGO / f"{ts}.npz") as b:
            assert abs(len(a["points_rh"]) - len(b["points_rh"])) <= 0.002 * len(a["points_rh"])
    rows = AppendCsv(tmp_path / "pred" / "filter_metrics.csv").rows()
    assert [r["n_history"] for r in rows if r["status"] == "ok"] == ["0", "1", "2", "2"]


def test_missing_folder_and_empty_output_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        run_filter(tmp_path / "nope", tmp_path / "out", CFG)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="eval.save_points=true"):
        run_filter(tmp_path / "empty", tmp_path / "out", CFG)


def test_cli_runs_documents_and_reports_errors(eval_out, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        coopmap_main(["filter", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for words in ("range crop", "height band", "confidence", "voxel", "outlier", "multi-frame support",
                  "Box rule", "--frame", "native"):
        assert words in text
    out = tmp_path / "cli"
    shutil.rmtree(out, ignore_errors=True)
    assert coopmap_main(["filter", "--pred", str(eval_out), "--out", str(out), "--frames", "2", "--no-progress",
                         "--modes", "single", "--format", "ply", "pcd"]) == 0
    assert "filtered 1 frames (1 ok, 0 skipped)" in capsys.readouterr().out
    assert {p.name for p in (out / "single" / SCEN / EGO).iterdir()} == {"000068.ply", "000068.pcd"}
    assert coopmap_main(["filter", "--pred", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "coopmap filter: error:" in capsys.readouterr().err
    assert coopmap_main(["filter", "--pred", str(eval_out), "--out", str(out), "--range", "0", "0", "-1", "1",
                         "-1", "1"]) == 2
