"""``coopmap index`` on a clean tree."""

from coopmap.cli import main as cli_main


def test_index_report_on_the_shared_tree(synth_tree, capsys):
    assert cli_main(["index", str(synth_tree), "--frames", "2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    row = next(line.split() for line in lines if line.startswith("train "))
    assert row == ["train", "1", "3", "0", "3", "9", "36"]  # scenarios CAVs RSUs frames agent-frames images
    assert any(line.startswith("test ") for line in lines)
    cover = [line for line in lines if "camera0" in line and "%" in line]
    assert len(cover) == 2
    first = [float(tok.rstrip("%")) for tok in cover[0].split() if tok.endswith("%")]
    assert len(first) == 4 and all(0.5 < c < 80 for c in first)
    assert "problems: 0" in out
    assert cli_main(["index", str(synth_tree), "--frames", "0"]) == 0
    assert "cached index" in capsys.readouterr().out


def _damage(root):
    """A copy of the shared tree with one bad file of each kind; returns {path: expected reason regex}."""
    import re

    import yaml
    from PIL import Image

    frames = sorted((root / "train").glob("*/*/*.yaml"))
    bad = {}
    a, b, c, d, e, f = frames[:6]
    png = a.with_name(a.stem + "_camera2.png")
    png.write_bytes(b"this is not an image at all, just text someone saved as png" * 10)
    bad[png] = "not a PNG file"
    png = b.with_name(b.stem + "_camera1.png")
    png.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    bad[png] = "truncated PNG"
    png = c.with_name(c.stem + "_camera3.png")
    with Image.open(png) as im:
        im.resize((im.width // 2, im.height // 2)).save(png)
    bad[png] = "a resized or swapped image"
    pcd = d.with_suffix(".pcd")
    pcd.write_bytes(pcd.read_bytes()[: pcd.stat().st_size // 2])
    bad[pcd] = "truncated"
    doc = yaml.safe_load(e.read_text())
    del doc["true_ego_pos"]
    e.write_text(yaml.safe_dump(doc))
    bad[e] = "missing key 'true_ego_pos'"
    doc = yaml.safe_load(f.read_text())
    del doc["camera1"]["intrinsic"]
    f.write_text(yaml.safe_dump(doc))
    bad[f] = re.escape("missing key 'camera1.intrinsic'")
    return bad


def test_a_damaged_tree_has_every_bad_file_named(synth_tree, tmp_path, capsys):
    """Garbage PNG, truncated PNG, resized PNG, truncated PCD, yaml missing a key, yaml missing a camera's K:
    each file is named once with its reason, by the cheap checks (and by --deep)."""
    import re
    import shutil

    root = tmp_path / "damaged"
    shutil.copytree(synth_tree, root, ignore=shutil.ignore_patterns(".coopmap_index.json"))
    bad = _damage(root)
    for extra in ([], ["--deep"]):
        assert cli_main(["index", str(root), "--frames", "0", "--no-cache", *extra]) == 1
        out = capsys.readouterr().out
        assert "files checked" in out and f"{len(bad)} bad file(s)" in out, out
        listed = [line.strip() for line in out.split("\nproblems:")[1].splitlines()[1:] if line.strip()]
        for path, why in bad.items():
            hits = [line for line in listed if line.startswith(f"{path}:")]
            assert len(hits) == 1 and re.search(why, hits[0]), (path, hits)
        assert len(listed) == len(bad), listed


def test_deep_catches_a_corrupt_png_body_the_cheap_check_cannot_see(synth_tree, tmp_path, capsys):
    """Bytes flipped inside the image data (signature, IHDR and IEND intact): only decoding finds it."""
    import shutil

    root = tmp_path / "corrupt"
    shutil.copytree(synth_tree, root, ignore=shutil.ignore_patterns(".coopmap_index.json"))
    png = sorted((root / "train").glob("*/*/*_camera0.png"))[0]
    raw = bytearray(png.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = bytes(64)
    png.write_bytes(bytes(raw))
    assert cli_main(["index", str(root), "--frames", "0", "--no-cache"]) == 0
    capsys.readouterr()
    assert cli_main(["index", str(root), "--frames", "0", "--no-cache", "--deep"]) == 1
    out = capsys.readouterr().out
    assert f"{png}: unreadable image" in out
