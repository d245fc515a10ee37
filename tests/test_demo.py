"""`coopmap demo`: synthetic data -> ablation -> report, end to end (micro sizes here; the README's run is real)."""

import re

import pytest

from coopmap import demo


def test_help_explains_the_demo(capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--quick" in text and "coopmap ablate" in text and "coopmap report" in text


@pytest.mark.slow
def test_micro_demo_end_to_end_and_resume(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path), "--preset", "micro", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| stage2_full | coop |" in out and "Verdicts" in out
    html = (tmp_path / "report" / "index.html").read_text()
    for src in re.findall(r'src="([^"]+\.png)"', html):
        assert (tmp_path / "report" / src).stat().st_size > 1000
    assert demo.main(["--out", str(tmp_path), "--preset", "micro", "--quiet"]) == 0
    assert "already generated, skipped" in capsys.readouterr().out
