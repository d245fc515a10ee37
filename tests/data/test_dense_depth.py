"""HEAL's OPV2V-H dense depth PNGs (8-bit, whole metres, 255 = sky): encoding, reading, HEAL's folder layout, the
views' dense depth GT and ``coopmap index``'s coverage report, on files our generator writes in that encoding."""

import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from coopmap.cli import main as cli_main
from coopmap.data.dataset import ViewsDataset
from coopmap.data.dense_depth import (
    depth_png_to_metres,
    find_dense_depth,
    metres_to_depth_png,
    read_depth_png,
)
from coopmap.data.transforms import plan_resize_crop, resize_crop_nearest
from coopmap.errors import DataError
from coopmap.synth import generate


def test_encoding_closed_form():
    z = np.array([[0.0, 0.4, 0.6, 12.49, 13.5, 254.4, 254.6, 1000.0]])
    v = metres_to_depth_png(z)
    assert v.dtype == np.uint8 and v.tolist() == [[255, 0, 1, 12, 14, 254, 255, 255]]  # round half to even
    assert depth_png_to_metres(v).tolist() == [[0.0, 0.0, 1.0, 12.0, 14.0, 254.0, 0.0, 0.0]]


@pytest.fixture(scope="module")
def heal_tree(tmp_path_factory):
    """1 scenario, 2 CAVs, 1 frame at 200x150 with both the .npy and HEAL's depth PNGs."""
    root = tmp_path_factory.mktemp("heal") / "OPV2V"
    generate(root, agents=2, frames=1, seed=4, image_size=(200, 150), depth_png=True, progress=False)
    return root


def test_generator_png_is_the_npy_in_whole_metres(heal_tree):
    pngs = sorted(heal_tree.glob("train/*/*/*_depth*.png"))
    assert len(pngs) == 8
    for png in pngs:
        with Image.open(png) as im:
            assert im.mode == "L" and im.size == (200, 150)
        z = np.load(png.with_suffix(".npy"))
        got = read_depth_png(png, (200, 150))
        inside = (z >= 0.5) & (z < 254.5)
        assert np.abs(got[inside] - z[inside]).max() <= 0.5 + 1e-6
        assert (got[~inside] == 0).all() and inside.mean() > 0.3


def test_views_read_the_png_where_no_npy_and_heals_sibling_layout(heal_tree, tmp_path, make_cfg):
    """Without .npy (a real tree: no 'synthetic' block), the views' dense depth is the PNG's metres resampled by
    nearest neighbour, exactly; the PNGs are also found in HEAL's layout (OPV2V -> OPV2V_Hetero sibling root)."""
    root = tmp_path / "OPV2V"
    shutil.copytree(heal_tree, root)
    proto = next(root.glob("train/*/data_protocol.yaml"))
    doc = yaml.safe_load(proto.read_text())
    del doc["synthetic"]
    proto.write_text(yaml.safe_dump(doc))
    hetero = tmp_path / "OPV2V_Hetero"
    for png in root.glob("train/*/*/*_depth*.png"):
        target = hetero / png.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(png, target)
    views = ViewsDataset(make_cfg(root, mode="single", resolution=[140, 112]))[0]
    plan = plan_resize_crop((200, 150), (140, 112))
    agent_dir = next(p for p in sorted(root.glob("train/*/*")) if p.is_dir() and p.name == str(int(views[0]["agent_id"])))
    ts = f"{int(views[0]['timestamp']):06d}"
    for v in views:
        k = int(v["camera_index"])
        path = find_dense_depth(root, agent_dir, ts, k, synthetic=False)
        assert path == hetero / agent_dir.relative_to(root) / f"{ts}_depth{k}.png"
        want = resize_crop_nearest(read_depth_png(path, (200, 150)), plan)
        assert bool(v["has_dense_depth"]) and not bool(v["is_synthetic"])
        np.testing.assert_array_equal(v["dense_depthmap"][..., 0].numpy(), want)
        np.testing.assert_array_equal(v["non_ambiguous_mask"].numpy(), want > 0)


def test_index_reports_dense_depth_coverage_and_names_a_bad_depth_png(heal_tree, tmp_path, capsys):
    root = tmp_path / "OPV2V"
    shutil.copytree(heal_tree, root)
    for npy in root.glob("train/*/*/*_depth*.npy"):
        npy.unlink()
    bad = sorted(root.glob("train/*/*/*_depth2.png"))[0]
    Image.fromarray(np.zeros((150, 200), np.uint16) + 300).save(bad)  # 16-bit: not HEAL's encoding
    assert cli_main(["index", str(root), "--frames", "0", "--no-cache"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("train ") and "images" in x)
    assert "8 of 8 images (100.0 %): 8 png, 0 npy" in line
    assert f"{bad}: depth PNG must be 8-bit greyscale" in out
    with pytest.raises(DataError, match="8-bit greyscale"):
        read_depth_png(bad, (200, 150))
