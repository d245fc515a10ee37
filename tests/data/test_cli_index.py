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
