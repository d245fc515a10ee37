"""`coopmap report` end to end on real eval / train / filter outputs and a hand-written ablation folder."""

from __future__ import annotations

import math
import shutil

import pytest
from omegaconf import OmegaConf
from report_helpers import Page, csv_mean

from coopmap.cli import main as coopmap_main
from coopmap.errors import DataError
from coopmap.report.collect import collect, detect_kind

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST = ["--no-progress", "--dpi", "50"]


def _report(inputs, out, *args) -> tuple[str, Page]:
    code = coopmap_main(["report", *map(str, inputs), "--out", str(out), *FAST, *args])
    assert code == 0
    text = (out / "index.html").read_text()
    return text, Page(text)


def _check_images(page: Page, out) -> None:
    assert page.images
    for src in page.images:
        assert "/" not in src and not src.startswith(".."), src  # relative, same folder
        data = (out / src).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1024, src


def test_ablation_folder_gives_verdicts_tables_curves_and_frames(report_inputs, tmp_path):
    abl = report_inputs["ablation"]
    text, page = _report([abl], tmp_path, "--worst", "1")
    _check_images(page, tmp_path)
    kinds = {src.split("_")[0] for src in page.images}
    assert kinds == {"bars", "runs", "curves", "terms", "bev", "cams"}
    # the failed improvement is stated plainly, with its red badge
    assert "stage2_mask does NOT beat the baseline on chamfer (coop)" in text
    assert 'class="verdict bad"><span class="badge">DOES NOT BEAT BASELINE' in text
    assert "<b>0 of 1</b> comparison(s) are a win against the baseline (stage2)" in text
    # the table is ablation.csv's: exact values, baseline recognised from its zero deltas
    for variant, ev in (("stage2", report_inputs["exact"]), ("stage2_mask", report_inputs["scaled"])):
        for mode in ("single", "coop"):
            for metric in ("chamfer", "scale_err", "floating_ratio"):
                assert page.cells[(mode, variant, metric)] == pytest.approx(csv_mean(ev, mode, metric), rel=1e-12)
    assert "(baseline)" in text and "not matched" not in text
    # worst frames: only the filtered variant's by default, BEV before / after filtering
    assert [s for s in page.images if s.startswith("bev_")] == [s for s in page.images
                                                               if s.startswith("bev_stage2_coop")]
    assert "before / after filtering" in text and "after" in text


def test_eval_and_run_folders_table_equals_csv_means(report_inputs, tmp_path):
    exact, scaled, run = report_inputs["exact"], report_inputs["scaled"], report_inputs["run"]
    text, page = _report([exact, scaled, run], tmp_path, "--worst", "0")
    _check_images(page, tmp_path)
    for name, ev in (("exact", exact), ("scaled", scaled)):
        for mode in ("single", "coop"):
            for metric in ("depth_rmse", "chamfer", "fscore", "pose_abs_t", "n_pred_points"):
                assert page.cells[(mode, name, metric)] == pytest.approx(csv_mean(ev, mode, metric), rel=1e-12)
    assert page.cells[("coop", "scaled", "scale_err")] == pytest.approx(0.25, abs=0.01)
    assert math.isnan(page.cells[("single", "exact", "agent_pose_abs_t")])  # undefined in single mode ...
    assert ">–<" in text  # ... and printed as a dash
    assert "No verdicts" in text and "curves_run.png" in page.images


def test_filter_folder_is_paired_with_its_eval_folder(report_inputs, tmp_path):
    inputs = collect([report_inputs["exact"], report_inputs["filter"]])
    assert inputs.evals[0].filter is not None and not inputs.filters and not inputs.notes
    text, _ = _report([report_inputs["exact"], report_inputs["filter"]], tmp_path, "--worst", "0")
    assert "<h3>exact</h3>" in text and "eval folder unknown" not in text and "floating_ratio" in text


def test_missing_data_root_is_said_on_the_page(report_inputs, tmp_path):
    ev = tmp_path / "moved_eval"
    shutil.copytree(report_inputs["exact"], ev)
    cfg = OmegaConf.load(ev / "config.yaml")
    cfg.data.root = str(tmp_path / "gone")
    OmegaConf.save(cfg, ev / "config.yaml")
    text, page = _report([ev], tmp_path / "out", "--worst", "1")
    _check_images(page, tmp_path / "out")
    assert "camera images unavailable" in text and "data root not found" in text
    assert any(s.startswith("bev_") for s in page.images) and not any(s.startswith("cams_") for s in page.images)


def test_unrecognised_folder_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(DataError, match="train_log.csv"):
        detect_kind(tmp_path)
    assert coopmap_main(["report", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a report input" in capsys.readouterr().err


def test_help_lists_the_input_kinds(capsys):
    with pytest.raises(SystemExit) as exc:
        coopmap_main(["report", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(k in out for k in ("run folder", "eval folder", "filter folder", "ablation folder", "--worst"))
