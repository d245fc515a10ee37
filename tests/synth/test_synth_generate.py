"""``generate``: determinism, the noise model, option checks, and the command line."""

import filecmp
from pathlib import Path

import numpy as np
import pytest
from opv2v_files import agent_frames, read_pcd

from coopmap import cli
from coopmap.errors import ConfigError
from coopmap.synth import generate

SMALL = {"agents": 2, "frames": 2, "image_size": (48, 36), "progress": False}


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path):
    a = generate(tmp_path / "a", seed=7, **SMALL)
    generate(tmp_path / "b", seed=7, **SMALL)
    generate(tmp_path / "c", seed=8, **SMALL)
    files = _files(tmp_path / "a")
    assert files == _files(tmp_path / "b") and len(files) == a["files"] == 1 + 2 * 2 * 10
    assert all(filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False) for f in files)
    other = _files(tmp_path / "c")
    assert other != files  # other scenario name and CAV ids


def test_lidar_noise_is_0_02_m_along_the_ray(tmp_path):
    """Same seed with and without noise: the same rays return, 2 cm Gaussian range error along each ray."""
    generate(tmp_path / "exact", seed=4, lidar_noise=False, **SMALL)
    generate(tmp_path / "noisy", seed=4, lidar_noise=True, **SMALL)
    (agent, stamp), *_ = agent_frames(tmp_path / "exact" / "train")
    rel = agent.relative_to(tmp_path / "exact")
    exact = read_pcd(agent / f"{stamp}.pcd")[1][:, :3].astype(np.float64)
    noisy = read_pcd(tmp_path / "noisy" / rel / f"{stamp}.pcd")[1][:, :3].astype(np.float64)
    assert exact.shape == noisy.shape
    r0, r1 = np.linalg.norm(exact, axis=1), np.linalg.norm(noisy, axis=1)
    np.testing.assert_allclose(noisy / r1[:, None], exact / r0[:, None], atol=1e-5)  # same directions
    assert np.std(r1 - r0) == pytest.approx(0.02, rel=0.05) and abs(np.mean(r1 - r0)) < 1e-3


def test_summary_counts(tmp_path):
    s = generate(tmp_path, split="validate", scenarios=2, seed=1, **SMALL)
    assert len(s["scenarios"]) == 2 and len(set(s["scenarios"])) == 2
    assert s["images"] == 2 * 2 * 2 * 4 and s["files"] == 2 * (1 + 2 * 2 * 10)
    assert all(len(ids) == 2 for ids in s["cav_ids"])
    assert 40_000 < s["points_per_sweep"][1] <= s["points_per_sweep"][2] < 62_000
    assert Path(s["root"]) == tmp_path / "validate" and s["seconds"] > 0


@pytest.mark.parametrize("bad", [{"agents": 8}, {"agents": 0}, {"frames": 0}, {"image_size": (8, 6)},
                                 {"pcd_format": "binary_compressed"}, {"split": "a/b"}])
def test_bad_options_raise_config_error_naming_them(tmp_path, bad):
    opts = {**SMALL, **bad}
    with pytest.raises(ConfigError, match=f"synth.{next(iter(bad))}"):
        generate(tmp_path, **opts)


def test_binary_pcd_flag(tmp_path):
    generate(tmp_path, agents=1, frames=1, image_size=(32, 24), pcd_format="binary", progress=False)
    (agent, stamp), = agent_frames(tmp_path / "train")
    header, rows = read_pcd(agent / f"{stamp}.pcd")
    assert header["DATA"] == "binary" and rows.shape[0] == int(header["POINTS"]) > 40_000


def test_cli_writes_a_tree_and_reports(tmp_path, capsys):
    rc = cli.main(["synth", "--out", str(tmp_path), "--agents", "2", "--frames", "1", "--image-size", "32x24",
                   "--split", "test", "--seed", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "LiDAR points per sweep" in out and "coverage" in out
    assert len(agent_frames(tmp_path / "test")) == 2


@pytest.mark.parametrize("args, message", [(["--agents", "9"], "synth.agents"),
                                           (["--image-size", "big"], "synth.image_size")])
def test_cli_reports_bad_options_in_one_line(tmp_path, capsys, args, message):
    assert cli.main(["synth", "--out", str(tmp_path), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("coopmap synth: error:") and message in err and "\n" not in err


def test_cli_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["synth", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--split", "--scenarios", "--agents", "--frames", "--seed", "--image-size",
                 "--pcd-format", "--no-lidar-noise"):
        assert flag in text


def test_rewriting_replaces_own_scenarios_but_never_foreign_folders(tmp_path):
    from coopmap.errors import DataError

    first = generate(tmp_path, frames=2, **{k: v for k, v in SMALL.items() if k != "frames"})
    generate(tmp_path, frames=1, **{k: v for k, v in SMALL.items() if k != "frames"})  # same scenario, fewer frames
    assert len(agent_frames(tmp_path / "train")) == 2  # no stale frames left
    scenario = Path(first["root"]) / first["scenarios"][0]
    (scenario / "data_protocol.yaml").write_text("world: {}\n")  # looks like someone else's scenario
    with pytest.raises(DataError, match="not written by coopmap synth"):
        generate(tmp_path, **SMALL)
