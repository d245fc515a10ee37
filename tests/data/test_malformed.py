"""Each malformed input yields a clear error (file and reason) or a reported skip, never a deep traceback."""

import shutil

import pytest

from coopmap.cli import main as cli_main
from coopmap.data.dataset import ViewsDataset
from coopmap.data.index import build_index
from coopmap.errors import DataError


@pytest.fixture
def broken_tree(synth_tree, tmp_path):
    """A private copy of the shared synthetic tree's train split, to damage."""
    root = tmp_path / "tree"
    shutil.copytree(synth_tree / "train", root / "train")
    scen = next((root / "train").iterdir())
    agents = sorted(p for p in scen.iterdir() if p.is_dir())
    stamps = sorted(p.stem for p in agents[0].glob("*.yaml"))
    return root, scen, agents, stamps


def _sample_error(root, make_cfg, mode="coop"):
    ds = ViewsDataset(make_cfg(root, mode=mode, resolution=[112, 84]))
    with pytest.raises(DataError) as err:
        for i in range(len(ds)):
            ds[i]
    return str(err.value)


def test_truncated_pcd_names_the_file(broken_tree, make_cfg):
    root, scen, agents, stamps = broken_tree
    pcd = agents[0] / f"{stamps[0]}.pcd"
    pcd.write_bytes(pcd.read_bytes()[: pcd.stat().st_size // 2])
    assert f"{pcd}: truncated" in _sample_error(root, make_cfg)


def test_yaml_without_lidar_pose_is_skipped_and_named(broken_tree):
    root, scen, agents, stamps = broken_tree
    y = agents[1] / f"{stamps[1]}.yaml"
    y.write_text("\n".join(line for line in y.read_text().splitlines() if not line.startswith("lidar_pose")))
    index = build_index(root, use_cache=False, progress=False)
    assert any(p.path == str(y) and "missing key 'lidar_pose'" in p.reason for p in index.problems)
    assert agents[1].name not in index.scenarios[0].frames[stamps[1]]


def test_missing_camera_png_is_skipped_and_named(broken_tree):
    root, scen, agents, stamps = broken_tree
    (agents[2] / f"{stamps[0]}_camera3.png").unlink()
    index = build_index(root, use_cache=False, progress=False)
    assert any(p.path.endswith(f"{stamps[0]}_camera3.png") and "missing" in p.reason for p in index.problems)


def test_nan_in_cords_names_file_and_key(broken_tree, make_cfg):
    root, scen, agents, stamps = broken_tree
    y = agents[0] / f"{stamps[0]}.yaml"
    lines = y.read_text().splitlines()
    i = lines.index("  cords:")  # camera0 comes first: its cords' first value
    lines[i + 1] = "  - .nan"
    y.write_text("\n".join(lines) + "\n")
    assert f"{y}: 'camera0.cords' has a non-finite value" in _sample_error(root, make_cfg)


def test_unreadable_png_names_the_file(broken_tree, make_cfg):
    root, scen, agents, stamps = broken_tree
    png = agents[0] / f"{stamps[0]}_camera1.png"
    png.write_bytes(png.read_bytes()[:100])
    assert f"{png}: unreadable image" in _sample_error(root, make_cfg, mode="single")


def test_empty_folders_and_mismatched_timestamps_are_reported(broken_tree, capsys):
    root, scen, agents, stamps = broken_tree
    for f in agents[2].glob(f"{stamps[-1]}*"):
        f.unlink()  # the last frame exists for two agents only
    (scen / "777").mkdir()
    (root / "validate").mkdir()
    assert cli_main(["index", str(root), "--no-cache", "--frames", "1"]) == 1
    out = capsys.readouterr().out
    assert f"{scen / '777'}: empty agent folder" in out
    assert f"{root / 'validate'}: empty split folder" in out
    assert f"{agents[2]}: mismatched timestamps: 1 frame(s)" in out
    assert "Traceback" not in out


def test_cli_on_an_unusable_root_is_one_line(tmp_path, capsys):
    assert cli_main(["index", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset root is not a folder" in err[0]
